"""How the face moves: displacement bases for jaw, lips and eyelids over the face-mesh landmarks, and the
synthesised inside of the mouth. Pure geometry and pixels; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix

from avatarchat.render import landmarks as L
from avatarchat.render.warp import MeshWarp, read_only, region_anchors


def _smoothstep(x: np.ndarray) -> np.ndarray:
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
        mc = (p[13] + p[14]) / 2
        mouth_half = abs(float(np.dot(p[291] - p[61], right))) / 2
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
        chin_v = float((p[L.CHIN] - f.mouth_center) @ f.down)
        sel = (v > nose_v) & (np.abs(u) < f.half_width * 1.05)
        idx = np.nonzero(sel)[0]
        pad = 0.12 * f.height
        pts = p[idx]
        region = _clip_region(
            pts[:, 0].min() - pad, pts[:, 1].min() - pad * 0.3, pts[:, 0].max() + pad, pts[:, 1].max() + pad * 1.6, w, h
        )
        self.idx = idx
        anchors = region_anchors(*region)
        self.n_anchor = len(anchors)
        self.src = np.concatenate([pts, anchors])
        self.warp = MeshWarp(self.src, region)
        self.region = region

        lower_lip = set(L.LOWER_LIP_INNER + L.LOWER_LIP_OUTER + L.LOWER_LIP_MID)
        upper_lip = set(L.UPPER_LIP_INNER + L.UPPER_LIP_OUTER + L.UPPER_LIP_MID)
        lip = lower_lip | upper_lip | set(L.MOUTH_CORNERS)
        lateral = np.clip(1.0 - (np.abs(u) / f.half_width) ** 1.6, 0.0, 1.0)
        v_ll = max(float(v[17]), 1.0)

        jaw = np.zeros(len(p))
        wide = np.zeros((len(p), 2))
        rnd = np.zeros((len(p), 2))
        fixed = np.zeros(len(p), bool)  # points whose motion is prescribed; the rest follow as a membrane
        for i in idx:
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
            pts[:, 0].min() - pad_x, pts[:, 1].min() - pad_y, pts[:, 0].max() + pad_x, pts[:, 1].max() + pad_y * 0.6, w, h
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
        alpha = 0.7 * float(_smoothstep(np.float32((closed - 0.45) / 0.45)))
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


class MouthInterior:
    """Synthesises the inside of an open mouth (dark cavity, upper teeth, tongue hint), lit like the face."""

    def __init__(self, image: np.ndarray, lm: np.ndarray, rig: MouthRig) -> None:
        p = lm[:, :2]
        f = rig.face
        # Skin colour from the cheeks beside the nose: robust median, in float RGB.
        samples = []
        for i in (50, 280, 205, 425, 118, 347):
            x, y = int(p[i, 0]), int(p[i, 1])
            patch = image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].reshape(-1, 3)
            samples.append(patch)
        skin = np.median(np.concatenate(samples), axis=0).astype(np.float32)
        light = float(np.clip(skin.mean() / 170.0, 0.45, 1.3))
        teeth_light = float(np.clip(skin.mean() / 150.0, 0.8, 1.1))  # teeth stay light even on dark photos
        self.cavity = np.array([70.0, 22.0, 24.0], np.float32) * light * 0.55 + skin * 0.08
        self.teeth = np.array([236.0, 226.0, 205.0], np.float32) * teeth_light
        self.tongue = np.array([170.0, 78.0, 80.0], np.float32) * light * 0.75
        self.rest_gap = float(np.linalg.norm(p[14] - p[13]))
        self.height = f.height
        self.rig = rig
        # An avatar photographed with parted lips shows its real teeth: they hang from the upper jaw, which does
        # not move, so they are kept where they are and drawn over the cavity instead of synthetic ones.
        self.image = image
        src_poly = p[L.INNER_MOUTH_POLYGON].astype(np.float64)
        self.real_teeth = self.rest_gap > 0.02 * f.height
        self.src_poly = src_poly
        read_only(self.cavity, self.teeth, self.tongue, self.src_poly)

    def gap_alpha(self, gap: float) -> float:
        """How much synthetic interior shows: none at the rest opening, all once the jaw has dropped a bit."""
        return float(np.clip((gap - self.rest_gap - 0.3) / (0.025 * self.height), 0.0, 1.0))

    def paint(self, frame: np.ndarray, dst: np.ndarray) -> None:
        rig = self.rig
        upper = np.array([rig.point(dst, i) for i in L.UPPER_LIP_INNER])
        lower = np.array([rig.point(dst, i) for i in L.LOWER_LIP_INNER])
        gap = float(np.linalg.norm(rig.point(dst, 14) - rig.point(dst, 13)))
        alpha_max = self.gap_alpha(gap)
        if alpha_max <= 0.0:
            return
        poly = np.concatenate([upper, lower[::-1]])
        x0 = max(0, int(poly[:, 0].min()) - 2)
        y0 = max(0, int(poly[:, 1].min()) - 2)
        x1 = min(frame.shape[1], int(np.ceil(poly[:, 0].max())) + 3)
        y1 = min(frame.shape[0], int(np.ceil(poly[:, 1].max())) + 3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        hh, ww = y1 - y0, x1 - x0
        mask = np.zeros((hh * 4, ww * 4), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        mask = cv2.resize(mask, (ww, hh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        mask = cv2.GaussianBlur(mask, (3, 3), 0.8) * alpha_max

        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ou = np.argsort(upper[:, 0])
        ol = np.argsort(lower[:, 0])
        y_up = np.interp(gx[0], upper[ou, 0], upper[ou, 1])[None, :]
        y_lo = np.interp(gx[0], lower[ol, 0], lower[ol, 1])[None, :]
        depth = np.clip((gy - y_up) / np.maximum(y_lo - y_up, 1.0), 0.0, 1.0)
        cx = (upper[0, 0] + upper[-1, 0]) / 2
        half = max(abs(upper[-1, 0] - upper[0, 0]) / 2, 1.0)
        side = np.clip(np.abs(gx - cx) / half, 0.0, 1.0)
        # The opening narrows into the corners of the mouth instead of ending in a square edge.
        mask = mask * _smoothstep((1.0 - side) / 0.2)

        col = self.cavity[None, None, :] * (1.0 - 0.35 * depth[..., None]) * (1.0 - 0.4 * side[..., None] ** 2)
        open_px = max(gap - self.rest_gap, 0.0)
        if self.real_teeth:
            tmask = np.zeros((hh * 4, ww * 4), np.uint8)
            cv2.fillPoly(tmask, [np.round((self.src_poly - (x0, y0)) * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA)
            teeth = cv2.resize(tmask, (ww, hh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            teeth = cv2.GaussianBlur(teeth, (3, 3), 0.8)
            col = col * (1 - teeth[..., None]) + self.image[y0:y1, x0:x1].astype(np.float32) * teeth[..., None]
        else:
            teeth_h = min(0.026 * self.height, 0.35 * (gap + 1.0))
            teeth = _smoothstep((y_up + teeth_h - gy) / 1.5) * _smoothstep((gy - y_up + 2.0) / 1.5)
            teeth *= _smoothstep((1.0 - side) / 0.35)  # the row curves back out of sight at the corners
            # Separate teeth: faint gaps, about eight across the opening, narrower towards the corners.
            tooth_w = max(2 * half / 8.0, 2.0)
            gaps = np.maximum(np.cos(np.pi * (gx - cx) / tooth_w * (1 + 0.4 * side)), 0.0) ** 12
            shade = (1.0 - 0.15 * np.clip((gy - y_up) / max(teeth_h, 1.0), 0, 1) - 0.3 * side**2) * (1 - 0.18 * gaps)
            col = col * (1 - teeth[..., None]) + (self.teeth[None, None, :] * shade[..., None]) * teeth[..., None]
        tongue_h = min(0.3 * open_px, 0.04 * self.height)
        if tongue_h > 2.0:  # only once the mouth is open enough to show it
            bump = np.clip(1.0 - (side / 0.8) ** 2, 0.0, 1.0)  # a rounded mound in the middle
            tongue = _smoothstep((gy - (y_lo - tongue_h * np.sqrt(bump))) / 2.0) * bump * depth
            tongue = cv2.GaussianBlur(tongue.astype(np.float32), (5, 5), 1.2) * 0.8
            col = col * (1 - tongue[..., None]) + self.tongue[None, None, :] * tongue[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi * (1 - mask[..., None]) + col * mask[..., None], 0, 255).astype(np.uint8)
