"""The listening loop (issue 20): what the page plays while the person speaks. Rendered through the renderer's
public API and checked from the OUTPUT with an independent face-mesh pass: it loops without a seam, starts on the
rest frame (so it hands over to the idle loop and clips without a jump), keeps its eyes on the camera, and moves
the head enough to look alive (issue 20: rotation std >= 0.5 degrees while the person speaks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarchat.render.base import FPS, Avatar
from avatarchat.render.head_motion import listening_motion
from avatarchat.render.idle import build_idle_clip, build_listening_clip
from avatarchat.render.landmarks import FaceMesh
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import bundled_avatar
from benchmarks.head_pose import gaze, pose_series
from tests.helpers import decode_clip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse < 1e-10 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> MeshWarpRenderer:
    return MeshWarpRenderer(cache_dir=tmp_path_factory.mktemp("listen-avatars"), motion_scale=1.0)


@pytest.fixture(scope="module")
def loops(moving: MeshWarpRenderer):
    avatar = moving.register(bundled_avatar())
    return avatar, list(moving.listening_frames(avatar)), list(moving.idle_frames(avatar))


def test_the_listening_curves_loop_from_rest_with_the_eyes_on_the_camera() -> None:
    m = listening_motion(200, FPS)
    assert m.is_still(0)
    for name in ("pitch", "yaw", "roll", "ty", "brow"):
        curve = getattr(m, name)
        assert abs(curve[-1] - curve[0]) <= np.abs(np.diff(curve)).max() + 1e-9, name  # closes like any step
    assert not m.gaze_x.any() and not m.gaze_y.any()
    assert m.brow.max() > 0.3, "an occasional brow raise"


def test_the_listening_loop_is_seamless_and_starts_on_the_rest_frame(loops) -> None:
    avatar, frames, _ = loops
    assert len(frames) >= 4 * FPS
    assert np.array_equal(frames[0], avatar.image)
    steps = [psnr(frames[k], frames[k + 1]) for k in range(len(frames) - 1)]
    # Last frame -> first frame (the loop's wrap) is no bigger a step than the loop's own steps.
    assert psnr(frames[-1], frames[0]) >= min(min(steps), 40.0)
    assert min(steps) < 60.0, "the loop moves"


def test_the_listening_loop_moves_the_head_and_keeps_the_eyes_on_the_camera(loops) -> None:
    avatar, frames, idle = loops
    with FaceMesh(static=True, max_faces=1) as mesh:
        rest = mesh.detect_one(avatar.image)
        listen_lm = [mesh.detect_one(f) for f in frames[::2]]
        idle_lm = [mesh.detect_one(f) for f in idle[::2]]
    rot = pose_series(rest, listen_lm).rotation_std()
    assert rot.max() >= 0.5, f"rotation std per axis {rot}"
    listen_gaze = np.abs([gaze(lm) - gaze(rest) for lm in listen_lm])[:, 0]
    idle_gaze = np.abs([gaze(lm) - gaze(rest) for lm in idle_lm])[:, 0]
    # The idle loop looks aside for a while; the measure sees that, and the listening loop never does it.
    assert listen_gaze.max() < 0.03, listen_gaze.max()
    assert np.sort(idle_gaze)[-10:].mean() > 1.5 * np.sort(listen_gaze)[-10:].mean(), (idle_gaze, listen_gaze)


def test_a_still_head_or_a_video_listens_with_its_idle_loop(tmp_path: Path, avatar) -> None:
    still = MeshWarpRenderer(cache_dir=tmp_path, motion_scale=0.0)
    for a, b in zip(still.listening_frames(avatar), still.idle_frames(avatar), strict=True):
        assert np.array_equal(a, b)
    # A video avatar: its own recorded frames, out and back (its gaze is what was filmed).
    video = Avatar("video-test", np.stack([avatar.image, avatar.image[::-1], avatar.image[:, ::-1]]),
                   np.repeat(avatar.frame_landmarks, 3, axis=0))
    moving = MeshWarpRenderer(cache_dir=tmp_path, motion_scale=1.0)
    listened = list(moving.listening_frames(video))
    assert len(listened) == 4 and all(np.array_equal(a, b) for a, b in zip(listened, moving.idle_frames(video),
                                                                             strict=True))


def test_the_listening_clip_is_encoded_once_beside_the_idle_clip(moving: MeshWarpRenderer, loops) -> None:
    avatar, frames, _ = loops
    path = build_listening_clip(moving, avatar, moving.cache_dir)
    assert path.name == "listen.mp4" and path.parent == build_idle_clip(moving, avatar, moving.cache_dir).parent
    mtime = path.stat().st_mtime_ns
    assert build_listening_clip(moving, avatar, moving.cache_dir).stat().st_mtime_ns == mtime  # cached
    clip = decode_clip(path.read_bytes())
    assert len(clip.frames) == len(frames) and clip.fps == FPS
    assert psnr(clip.frames[0], clip.frames[-1]) >= 35.0  # encoded, still seamless
