"""The piecewise-affine warp's maps: exact where the whole mesh moves by one affine map, identity outside, and
safe when a triangle collapses."""

from __future__ import annotations

import numpy as np

from avatarchat.render.warp import MeshWarp, region_anchors

REGION = (40, 30, 200, 150)


def mesh(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inner = rng.uniform([60, 50], [180, 130], (30, 2))
    return np.concatenate([region_anchors(*REGION), inner]).astype(np.float32)


def test_a_mesh_moved_by_one_affine_map_samples_its_exact_inverse() -> None:
    src = mesh()
    warp = MeshWarp(src, REGION)
    centre = np.array([120.0, 90.0])
    m = np.array([[1.05, 0.04], [-0.03, 0.97]])  # a slight turn, stretch and shear about the centre
    dst = (src - centre) @ m.T + centre + (1.5, -2.0)
    map_x, map_y = warp.maps(dst)
    x0, y0, x1, y1 = REGION
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inv = np.linalg.inv(m)
    want = np.stack([gx - centre[0] - 1.5, gy - centre[1] + 2.0], axis=-1) @ inv.T + centre
    # pixels well inside the moved mesh (the border anchors moved too, so the region's rim may fall outside it)
    inside = (gx > x0 + 12) & (gx < x1 - 12) & (gy > y0 + 12) & (gy < y1 - 12)
    assert np.abs(map_x[inside] - want[..., 0][inside]).max() < 1e-3
    assert np.abs(map_y[inside] - want[..., 1][inside]).max() < 1e-3


def test_unmoved_points_give_the_identity_and_a_collapsed_triangle_stays_finite() -> None:
    src = mesh(1)
    warp = MeshWarp(src, REGION)
    x0, y0, x1, y1 = REGION
    gy, gx = np.mgrid[y0:y1, x0:x1]
    map_x, map_y = warp.maps(src)
    assert np.abs(map_x - gx).max() < 1e-3 and np.abs(map_y - gy).max() < 1e-3
    dst = src.copy()
    a, b, c = warp.triangles[len(warp.triangles) // 2]
    dst[b] = dst[c] = dst[a]  # one triangle squeezed to a point
    map_x, map_y = warp.maps(dst)
    assert np.isfinite(map_x).all() and np.isfinite(map_y).all()
    far = np.hypot(gx - dst[a][0], gy - dst[a][1]) > 60  # the triangles around it fold; far away nothing moves
    assert np.abs(map_x - gx)[far].max() < 1e-3
