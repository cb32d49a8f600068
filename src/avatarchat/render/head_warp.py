"""The whole head moving in a still picture: a 2.5D warp.

The face mesh has depth (z), so a head pose is drawn by rotating the 3D landmarks about a pivot in the neck and
projecting them back orthographically: the nose swings further than the cheeks when the head turns, as it
should. Brow lift and knit and the gaze are extra landmark displacements on top. The landmarks' displacements
become a dense field by piecewise-linear interpolation over a mesh that also holds two rings: an ellipse around
the head (hair, ears, the top of the neck), which moves rigidly with it, and a wider one, which stays put. So
the field fades smoothly to zero before the background, nothing tears, and one ``cv2.remap`` of the head's box
moves everything. The interpolation weights are computed once per picture; a frame costs one sparse product.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import Delaunay

from avatarchat.render import landmarks as L
from avatarchat.render.face_rig import FaceFrame
from avatarchat.render.warp import read_only

RING_POINTS = 40
HEAD_AXES = (1.6, 0.88)  # the head ellipse: across (x the face's half width), along (x the face height)
HEAD_RAISE = 0.15  # its centre sits this far (x face height) above the face's middle: hair is above the face
FADE = 1.3  # the still ring is the head ellipse scaled by this much
BROW_LIFT = 0.035  # brow raise at lift 1, x face height
KNIT_IN, KNIT_DOWN = 0.014, 0.008  # inner brows at knit 1: towards the nose and down, x face height


def rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation matrix in image axes (x right, y down, z away from the camera), angles in degrees."""
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ellipse(center: np.ndarray, right: np.ndarray, down: np.ndarray, a: float, b: float, k: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return center + np.cos(t)[:, None] * a * right + np.sin(t)[:, None] * b * down


class HeadWarp:
    """Moves the head of one picture (given its 478 landmarks with z) by a pose, brows and gaze."""

    def __init__(self, lm: np.ndarray, size: tuple[int, int]) -> None:
        w, h = size
        f = FaceFrame.of(lm)
        self.face = f
        pts = lm.astype(np.float64)
        mid = (pts[L.FOREHEAD, :2] + pts[L.CHIN, :2]) / 2
        center = mid - HEAD_RAISE * f.height * f.down
        a, b = HEAD_AXES[0] * f.half_width, HEAD_AXES[1] * f.height
        head = ellipse(center, f.right, f.down, a, b, RING_POINTS)
        fade = ellipse(center, f.right, f.down, a * FADE, b * FADE, RING_POINTS)
        z_back = float(np.median(pts[L.FACE_OVAL, 2])) + 0.1 * f.height
        self.points3 = np.concatenate([pts, np.column_stack([head, np.full(len(head), z_back)])])
        self.n_moving = len(self.points3)
        # The pivot: in the neck, below the mouth and behind the face.
        self.pivot = np.array([*(mid + 0.45 * f.height * f.down), float(pts[:, 2].mean()) + 0.45 * f.height])
        ring = np.concatenate([head, fade])
        x0, y0 = max(0, int(ring[:, 0].min())), max(0, int(ring[:, 1].min()))
        x1, y1 = min(w, int(np.ceil(ring[:, 0].max())) + 1), min(h, int(np.ceil(ring[:, 1].max())) + 1)
        self.region = (x0, y0, x1, y1)
        corners = np.array([[x0 - 1, y0 - 1], [x1, y0 - 1], [x0 - 1, y1], [x1, y1]], np.float64)
        mesh = np.concatenate([self.points3[:, :2], fade, corners])
        self.weights = self._interpolation(mesh, self.region)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        self._gx, self._gy = gx.astype(np.float32), gy.astype(np.float32)
        iris = pts[L.IRIS[1:5], :2]
        self.iris_radius = float(np.linalg.norm(iris - pts[L.IRIS[0], :2], axis=1).mean())
        self.brow_share = np.zeros(len(pts))
        self.brow_share[L.LEFT_BROW + L.RIGHT_BROW] = 1.0
        self.brow_share[L.FOREHEAD_LOW] = 0.35
        self.knit_dir = np.zeros((len(pts), 2))
        for i in L.BROW_INNER:
            side = 1.0 if float((pts[i, :2] - pts[L.NOSE_BRIDGE, :2]) @ f.right) < 0 else -1.0
            self.knit_dir[i] = (side * KNIT_IN * f.right + KNIT_DOWN * f.down) * f.height
        read_only(self.points3, self.pivot, self._gx, self._gy, self.brow_share, self.knit_dir)

    @staticmethod
    def _interpolation(mesh: np.ndarray, region: tuple[int, int, int, int]) -> csr_matrix:
        """Sparse (pixels x mesh points) barycentric weights of every pixel of ``region`` in the rest mesh."""
        x0, y0, x1, y1 = region
        gy, gx = np.mgrid[y0:y1, x0:x1]
        q = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64)
        tri = Delaunay(mesh)
        s = tri.find_simplex(q)
        inside = s >= 0
        t = tri.transform[s[inside]]
        bary = np.einsum("nij,nj->ni", t[:, :2], q[inside] - t[:, 2])
        wts = np.column_stack([bary, 1 - bary.sum(axis=1)])
        rows = np.repeat(np.nonzero(inside)[0], 3)
        cols = tri.simplices[s[inside]].ravel()
        return csr_matrix((wts.ravel(), (rows, cols)), shape=(len(q), len(mesh)))

    def displacements(self, pitch: float, yaw: float, roll: float, tx: float, ty: float, brow: float = 0.0,
                      knit: float = 0.0, gaze_x: float = 0.0, gaze_y: float = 0.0) -> np.ndarray:
        """(mesh points, 2) image displacement of every point of the mesh (the still ring and corners: 0)."""
        f = self.face
        rel = self.points3 - self.pivot
        moved = rel @ rotation(pitch, yaw, roll).T
        d = np.zeros((self.weights.shape[1], 2))
        d[: self.n_moving] = (moved - rel)[:, :2] + np.array([tx, ty]) * f.height
        n = len(self.brow_share)
        d[:n] -= np.outer(self.brow_share * brow * BROW_LIFT * f.height, f.down)
        d[:n] += self.knit_dir * knit
        d[L.IRIS] += (gaze_x * f.right + gaze_y * f.down) * self.iris_radius
        return d

    def apply(self, frame: np.ndarray, pose: tuple[float, ...]) -> np.ndarray:
        """``frame`` (the rest picture, mouth and lids already drawn) with the head moved; a new array."""
        field = self.weights @ self.displacements(*pose)
        x0, y0, x1, y1 = self.region
        shape = (y1 - y0, x1 - x0)
        fx = field[:, 0].reshape(shape).astype(np.float32)
        fy = field[:, 1].reshape(shape).astype(np.float32)
        out = frame.copy()
        out[y0:y1, x0:x1] = cv2.remap(frame, self._gx - fx, self._gy - fy, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        return out
