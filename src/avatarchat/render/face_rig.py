"""How the face moves: displacement bases for jaw, lips and eyelids over the face-mesh landmarks, and the lash
line of a closing lid. Pure geometry and pixels; no I/O. The inside of the mouth is render/mouth_interior.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix

from avatarchat.render import landmarks as L
from avatarchat.render.warp import MeshWarp, read_only, region_anchors


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class FaceFrame:
    """The face's own axes: ``down`` from forehead to chin, ``right`` across, and its size in pixels."""

    down: np.ndarray
    right: np.ndarray
    height: float
    half_width: float
    mouth_center: np.ndarray
    mouth_half: float

    @classmethod
    def of(cls, lm: np.ndarray) -> FaceFrame:
        p = lm[:, :2].astype(np.float64)
        axis = p[L.CHIN] - p[L.FOREHEAD]
        height = float(np.linalg.norm(axis))
        down = axis / height
        right = np.array([-down[1], down[0]])
        if np.dot(p[L.FACE_RIGHT] - p[L.FACE_LEFT], right) < 0:
            right = -right
        half_width = abs(float(np.dot(p[L.FACE_RIGHT] - p[L.FACE_LEFT], right))) / 2
        mc = (p[L.INNER_LIP_TOP] + p[L.INNER_LIP_BOTTOM]) / 2
        mouth_half = abs(float(np.dot(p[L.MOUTH_RIGHT] - p[L.MOUTH_LEFT], right))) / 2
        read_only(down, right, mc)
        return cls(down, right, height, half_width, mc, mouth_half)


def _clip_region(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> tuple[int, int, int, int]:
    return max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))


def relax(disp: np.ndarray, fixed: np.ndarray, triangles: np.ndarray, iterations: int = 80) -> np.ndarray:
    """Free points take the average motion of their mesh neighbours (a discrete membrane), so the skin between
    the lips, the chin and the fixed border moves smoothly instead of folding."""
    n = len(disp)
    rows = triangles[:, [0, 1, 2, 1, 2, 0]].ravel()
    cols = triangles[:, [1, 2, 0, 0, 1, 2]].ravel()
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(axis=1)).ravel()
    out = disp.copy()
    free = ~fixed
    for _ in range(iterations):
        avg = (adj @ out) / np.maximum(deg, 1)[:, None]
        out[free] = avg[free]
    return out


class MouthRig:
    """Jaw/lip bases over the lower-face landmarks, and the warp that applies them."""

    MAX_OPEN = 0.075  # jaw drop at open=1, as a share of forehead-to-chin height
    MAX_WIDE = 0.045
    MAX_ROUND = 0.05
    CHIN_SHARE = 0.7

    def __init__(self, lm: np.ndarray, size: tuple[int, int]) -> None:
        w, h = size
        p = lm[:, :2].astype(np.float64)
        f = FaceFrame.of(lm)
        self.face = f
        rel = p - f.mouth_center
        u = rel @ f.right  # across, pixels
        v = rel @ f.down  # down, pixels
        # Lower face: everything below the nose bottom, within the face's width.
        nose_v = float((p[L.NOSE_BOTTOM] - f.mouth_center) @ f.down)
        sel = (v > nose_v) & (np.abs(u) < f.half_width * 1.05)
        idx = np.nonzero(sel)[0]
        pad = 0.12 * f.height
        pts = p[idx]
        region = _clip_region(
            pts[:, 0].min() - pad, pts[:, 1].min() - pad * 0.3, pts[:, 0].max() + pad, pts[:, 1].max() + pad * 1.6, w, h
        )
        self.idx = idx
        anchors = region_anchors(*region)
        self.src = np.concatenate([pts, anchors])
        self.warp = MeshWarp(self.src, region)

        jaw, wide, rnd, fixed = self._prescribed(p, u, v)
        s = f.height
        n_pts = len(idx)
        # The three bases side by side (x, y each), relaxed together; anchors stay at zero.
        bases = np.zeros((len(self.src), 6))
        bases[:n_pts, 0:2] = jaw[idx, None] * f.down[None, :] * (self.MAX_OPEN * s)
        bases[:n_pts, 2:4] = wide[idx] * (self.MAX_WIDE * s)
        bases[:n_pts, 4:6] = rnd[idx] * (self.MAX_ROUND * s)
        keep = np.concatenate([fixed[idx], np.ones(len(anchors), bool)])
        relaxed = relax(bases, keep, self.warp.triangles)[:n_pts]
        self.jaw, self.wide, self.round = relaxed[:, 0:2], relaxed[:, 2:4], relaxed[:, 4:6]
        self._lm_idx = {int(j): k for k, j in enumerate(idx)}
        read_only(self.idx, self.src, self.jaw, self.wide, self.round)

    def _prescribed(self, p: np.ndarray, u: np.ndarray, v: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per landmark, the motion the lips, corners and jaw line are given (jaw drop as a share, wide and
        round as directions) and which landmarks those are; the rest of the lower face is relaxed around them."""
        f = self.face
        chin_v = float((p[L.CHIN] - f.mouth_center) @ f.down)
        lower_lip = set(L.LOWER_LIP_INNER + L.LOWER_LIP_OUTER + L.LOWER_LIP_MID)
        upper_lip = set(L.UPPER_LIP_INNER + L.UPPER_LIP_OUTER + L.UPPER_LIP_MID)
        lip = lower_lip | upper_lip | set(L.MOUTH_CORNERS)
        lateral = np.clip(1.0 - (np.abs(u) / f.half_width) ** 1.6, 0.0, 1.0)
        v_ll = max(float(v[L.OUTER_LIP_BOTTOM]), 1.0)

        jaw = np.zeros(len(p))
        wide = np.zeros((len(p), 2))
        rnd = np.zeros((len(p), 2))
        fixed = np.zeros(len(p), bool)  # points whose motion is prescribed; the rest follow as a membrane
        for i in self.idx:
            side = float(np.clip(u[i] / max(f.mouth_half, 1.0), -1.0, 1.0))
            if i in lower_lip:
                # Full drop in the middle, tapering to the corners' share so the lip does not fold at them.
                jaw[i] = 0.42 + 0.58 * (1.0 - side**2) ** 0.7
            elif i in L.MOUTH_CORNERS:
                jaw[i] = 0.42
            elif i in upper_lip:
                jaw[i] = -0.06
            elif v[i] > 1.2 * v_ll:
                # Chin and jaw line ride the jaw, a little less than the lower lip (which also curls down), so
                # the neck below stretches less.
                jaw[i] = self.CHIN_SHARE * lateral[i] * (1.0 if v[i] <= chin_v * 1.1 else 0.9)
            else:
                continue  # between the lips and the jaw line: relaxed below
            fixed[i] = True
            if i in lip:
                wide[i] = f.right * side * (abs(side) ** 0.5)
                rnd[i] = -f.right * side * (abs(side) ** 0.5)
                if i in L.UPPER_LIP_OUTER:
                    rnd[i] -= f.down * 0.25
                elif i in L.LOWER_LIP_OUTER:
                    rnd[i] += f.down * 0.25
        return jaw, wide, rnd, fixed

    def dst_points(self, open_: float, wide: float, round_: float) -> np.ndarray:
        disp = self.jaw * open_ + self.wide * wide + self.round * round_
        out = self.src.copy()
        out[: len(self.idx)] += disp
        return out

    def point(self, dst: np.ndarray, landmark: int) -> np.ndarray:
        return dst[self._lm_idx[landmark]]


class EyeRig:
    """Blink: the upper lids slide down to the lower lids; skin above them stretches with them."""

    def __init__(self, lm: np.ndarray, size: tuple[int, int]) -> None:
        w, h = size
        p = lm[:, :2].astype(np.float64)
        f = FaceFrame.of(lm)
        uppers = L.LEFT_EYE_UPPER + L.RIGHT_EYE_UPPER
        lowers = L.LEFT_EYE_LOWER + L.RIGHT_EYE_LOWER
        corners = L.LEFT_EYE_CORNERS + L.RIGHT_EYE_CORNERS
        idx = uppers + lowers + corners
        pts = p[idx]
        pad_x, pad_y = 0.06 * f.height, 0.07 * f.height
        region = _clip_region(
            pts[:, 0].min() - pad_x, pts[:, 1].min() - pad_y, pts[:, 0].max() + pad_x,
            pts[:, 1].max() + pad_y * 0.6, w, h
        )
        # Points halfway between each upper lid point and the top of the region move a little, so the lid's
        # skin stretches rather than sliding.
        brow = pts[: len(uppers)] - f.down * pad_y * 0.55
        anchors = region_anchors(*region)
        self.src = np.concatenate([pts, brow, anchors])
        self.warp = MeshWarp(self.src, region)
        n = len(self.src)
        self.basis = np.zeros((n, 2))
        nu = len(uppers)
        gap = p[lowers] - p[uppers]
        self.basis[:nu] = gap * 0.9
        self.basis[nu : 2 * nu] = -gap * 0.08
        off = len(idx)
        self.basis[off : off + nu] = gap * 0.35
        # The closed lid's edge, corner to corner, as indices into src: it gets a lash line, which also hides
        # the sliver of eye white squeezed into the seam.
        half = nu // 2
        c = {k: len(uppers) + len(lowers) + i for i, k in enumerate(corners)}
        self.lid_lines = [
            [c[L.LEFT_EYE_CORNERS[0]], *range(0, half), c[L.LEFT_EYE_CORNERS[1]]],
            [c[L.RIGHT_EYE_CORNERS[0]], *range(half, nu), c[L.RIGHT_EYE_CORNERS[1]]],
        ]
        self.lash_px = max(1, int(round(0.007 * f.height)))
        read_only(self.src, self.basis)

    def dst_points(self, closed: float) -> np.ndarray:
        return self.src + self.basis * closed

    def paint_lashes(self, frame: np.ndarray, dst: np.ndarray, closed: float) -> None:
        alpha = 0.7 * float(smoothstep(np.float32((closed - 0.45) / 0.45)))
        if alpha <= 0.0:
            return
        x0, y0, x1, y1 = self.warp.region
        roi = frame[y0:y1, x0:x1]
        ink = roi.copy()
        tone = roi.reshape(-1, 3).mean(axis=0) * 0.3
        for line in self.lid_lines:
            pts = np.round((dst[line] - (x0, y0)) * 4).astype(np.int32)
            cv2.polylines(ink, [pts], False, tuple(float(v) for v in tone), self.lash_px, cv2.LINE_AA, shift=2)
        frame[y0:y1, x0:x1] = cv2.addWeighted(ink, alpha, roi, 1.0 - alpha, 0.0)
