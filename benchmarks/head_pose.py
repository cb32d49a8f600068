"""Head pose measured from the OUTPUT: rigid landmarks of an independent face-mesh pass, aligned to the rest
frame's with Kabsch.

Forehead, nose bridge and eye corners move only with the skull (not with the jaw, lips, lids or brows), so the
rotation and translation that best map the rest frame's rigid points onto a frame's are the head's pose in that
frame. Shared by benchmarks/liveliness.py and tests/test_render_motion.py, so the test and the benchmark measure
the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.render import landmarks as L


def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``r`` and translation ``t`` with ``dst ~ src @ r.T + t`` (least squares, no reflection)."""
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, cd - cs @ r.T


def euler(r: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a rotation ``rz @ ry @ rx`` (image axes: x right, y down, z away)."""
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(pitch), float(-yaw), float(roll)


def face_height(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[L.FOREHEAD, :2] - lm[L.CHIN, :2]))


@dataclass
class PoseSeries:
    """Per output frame (NaN where no face was found): angles in degrees, translation in % of the face height,
    brow-to-eye distance in % of the face height."""

    angles: np.ndarray  # (n, 3) pitch, yaw, roll
    shift: np.ndarray  # (n, 2) x, y
    brow: np.ndarray  # (n,)

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.angles[:, 0])

    def rotation_std(self) -> np.ndarray:
        return np.nanstd(self.angles, axis=0)

    def shift_std(self) -> float:
        """Std of the translation's length-preserving components, pooled: sqrt(var x + var y)."""
        return float(np.sqrt(np.nansum(np.nanvar(self.shift, axis=0))))

    def angular_speed(self, sigma: float = 2.0) -> np.ndarray:
        """Degrees per frame after a Gaussian smoothing (sigma in frames, 80 ms by default) that removes the
        detector's frame-to-frame noise: head motion is slower than that noise."""
        a = self.angles.copy()
        for j in range(3):
            col = a[:, j]
            ok = np.isfinite(col)
            col[~ok] = np.interp(np.nonzero(~ok)[0], np.nonzero(ok)[0], col[ok]) if ok.any() else 0.0
            a[:, j] = gaussian_filter1d(col, sigma)
        speed = np.linalg.norm(np.diff(a, axis=0), axis=1)
        return np.concatenate([[speed[0]], speed]) if len(speed) else np.zeros(len(a))


def brow_distance(lm: np.ndarray) -> float:
    """Mean distance from each brow's upper middle to its upper lid's middle, in % of the face height."""
    d = [np.linalg.norm(lm[b, :2] - lm[e, :2]) for b, e in zip(L.BROW_TOP, L.EYE_TOP, strict=True)]
    return 100.0 * float(np.mean(d)) / face_height(lm)


def pose_series(rest: np.ndarray, lms: list[np.ndarray | None]) -> PoseSeries:
    """Pose of every frame's landmarks (None: no face) relative to the rest frame's."""
    n = len(lms)
    angles, shift, brow = np.full((n, 3), np.nan), np.full((n, 2), np.nan), np.full(n, np.nan)
    src = rest[L.RIGID].astype(np.float64)
    h = face_height(rest)
    for k, lm in enumerate(lms):
        if lm is None:
            continue
        r, t = kabsch(src, lm[L.RIGID].astype(np.float64))
        angles[k] = euler(r)
        moved = lm[L.RIGID].astype(np.float64).mean(axis=0) - src.mean(axis=0)
        shift[k] = 100.0 * moved[:2] / h
        brow[k] = brow_distance(lm)
    return PoseSeries(angles, shift, brow)


IRIS_CENTRES = (468, 473)  # the iris centres of the eyes between LEFT_EYE_CORNERS and RIGHT_EYE_CORNERS


def gaze(lm: np.ndarray) -> np.ndarray:
    """Where the eyes look, as each iris centre's place in its eye: (x along the corner-to-corner line, y across
    it) in eye widths from the eye's middle, averaged over both eyes. It moves with the eyes, not with the head
    (a turned head carries the eye corners along), so it reads the gaze of a moving head too."""
    out = []
    for centre, (a, b) in zip(IRIS_CENTRES, (L.LEFT_EYE_CORNERS, L.RIGHT_EYE_CORNERS), strict=True):
        pa, pb = lm[a, :2].astype(np.float64), lm[b, :2].astype(np.float64)
        axis = pb - pa
        width = float(np.linalg.norm(axis))
        along = axis / width
        across = np.array([-along[1], along[0]])
        rel = lm[centre, :2] - (pa + pb) / 2
        out.append([float(rel @ along) / width * np.sign(along[0]), float(rel @ across) / width])
    return np.mean(out, axis=0)
