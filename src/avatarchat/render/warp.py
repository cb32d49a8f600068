"""Piecewise-affine warping of an image region over a triangle mesh, vectorised with numpy + one cv2.remap.

Per frame: rasterise the destination triangles into an index map, look up each pixel's inverse affine
transform, and sample the source once. Cost is linear in the region's pixels, not in the triangle count.

A ``MeshWarp`` is built once per avatar frame and shared by every thread rendering that avatar, so it holds
only read-only arrays: the index map is allocated per call (a few microseconds), never kept as a scratch buffer
that another thread could be filling at the same time.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay


def region_anchors(x0: int, y0: int, x1: int, y1: int, per_side: int = 6) -> np.ndarray:
    """Fixed points around a region's border, so the warp is the identity where it meets the rest of the frame."""
    xs = np.linspace(x0, x1 - 1, per_side)
    ys = np.linspace(y0, y1 - 1, per_side)
    pts = ([(x, y0) for x in xs] + [(x, y1 - 1) for x in xs]
           + [(x0, y) for y in ys[1:-1]] + [(x1 - 1, y) for y in ys[1:-1]])
    return np.array(pts, dtype=np.float32)


def read_only(*arrays: np.ndarray) -> None:
    """Mark arrays of an object shared across threads as immutable: a stray in-place write then raises."""
    for a in arrays:
        a.setflags(write=False)


class MeshWarp:
    """Warps one rectangular region ``(x0, y0, x1, y1)`` given source and destination positions of its points."""

    def __init__(self, src_points: np.ndarray, region: tuple[int, int, int, int]) -> None:
        self.region = region
        self.src = np.asarray(src_points, dtype=np.float64)
        self.triangles = Delaunay(self.src).simplices.astype(np.int32)
        x0, y0, x1, y1 = region
        gy, gx = np.mgrid[y0:y1, x0:x1]
        self._gx = gx.astype(np.float32)
        self._gy = gy.astype(np.float32)
        read_only(self.src, self.triangles, self._gx, self._gy)

    def _inverse_affines(self, dst: np.ndarray) -> np.ndarray:
        """(T, 2, 3) affine maps taking destination triangle coords back to source coords.

        In closed form (Cramer's rule on each triangle's 3x3 system), not ``np.linalg.inv`` on a stack of 3x3
        matrices: as fast where BLAS runs one thread per caller (the server), and in a process where it does not,
        the ~300 tiny solves a frame no longer wake BLAS's threads (render CPU 4.8 -> 2.0 ms a frame)."""
        d = dst[self.triangles]  # (T, 3, 2)
        s = self.src[self.triangles]
        (xa, ya), (xb, yb), (xc, yc) = d[:, 0].T, d[:, 1].T, d[:, 2].T
        det = (xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)  # twice the signed area
        ok = np.abs(det) >= 1e-9
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        # the destination's barycentric weights of a point (x, y): w_k = (p_k x + q_k y + r_k) / det
        p = np.stack([yb - yc, yc - ya, ya - yb], axis=1) * inv_det[:, None]  # (T, 3)
        q = np.stack([xc - xb, xa - xc, xb - xa], axis=1) * inv_det[:, None]
        r = np.stack([xb * yc - xc * yb, xc * ya - xa * yc, xa * yb - xb * ya], axis=1) * inv_det[:, None]
        out = np.einsum("tkc,tkm->tcm", s, np.stack([p, q, r], axis=2))  # (T, 2, 3): source = sum_k w_k src_k
        out[~ok] = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # degenerate (collapsed) triangles: identity
        return out

    def maps(self, dst_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source sampling maps (for cv2.remap) of the region for the given destination point positions."""
        dst = np.asarray(dst_points, dtype=np.float64)
        x0, y0, x1, y1 = self.region
        index = np.zeros((y1 - y0, x1 - x0), dtype=np.uint16)  # per call: this warp is shared across threads
        shift = 4
        scale = 1 << shift
        tri_px = np.round((dst[self.triangles] - (x0, y0)) * scale).astype(np.int32)
        for t, pts in enumerate(tri_px):
            cv2.fillConvexPoly(index, pts, t + 1, lineType=cv2.LINE_8, shift=shift)
        affines = self._inverse_affines(dst)
        identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        table = np.concatenate([identity[None], affines]).astype(np.float32)  # index 0: outside every triangle
        coef = table.reshape(len(table), 6).T.copy()  # six (T + 1,) rows: one gather each, not an (h, w, 2, 3) one
        map_x = coef[0][index] * self._gx + coef[1][index] * self._gy + coef[2][index]
        map_y = coef[3][index] * self._gx + coef[4][index] * self._gy + coef[5][index]
        return map_x, map_y

    def apply(self, source: np.ndarray, dst_points: np.ndarray, out: np.ndarray) -> None:
        """Write the warped region of ``source`` (a full frame) into ``out`` (a full frame) in place."""
        x0, y0, x1, y1 = self.region
        map_x, map_y = self.maps(dst_points)
        out[y0:y1, x0:x1] = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
