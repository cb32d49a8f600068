"""The renderer contract any backend subclasses, avatar registration shared by every backend, and the idle clip
built from any renderer's idle loop. A tiny still-picture renderer stands in for a second backend. CPU only."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.render import landmarks as L
from avatarchat.render.avatar import CACHE_VERSION, register_avatar
from avatarchat.render.base import Avatar, Renderer, VoiceCalibrated, frame_count
from avatarchat.render.idle import build_idle_clip
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import bundled_avatar
from tests.helpers import decode_clip


class StillRenderer(Renderer):
    """A second backend in a few lines: the shared registration, and the rest frame for every frame."""

    name = "still"

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def register(self, media: Path) -> Avatar:
        return register_avatar(media, self.cache_dir, 256)

    def idle_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
        for k in range(10):
            yield np.clip(avatar.image.astype(np.int16) + 8 * k, 0, 255).astype(np.uint8)

    def render(self, avatar: Avatar, speech: Speech, cancel: threading.Event | None = None,
               voice: str | None = None) -> Iterator[np.ndarray]:
        for _ in range(frame_count(speech.duration_s, self.fps)):
            yield avatar.image


def test_a_backend_must_implement_the_whole_contract() -> None:
    class NoRender(Renderer):
        name = "incomplete"

        def register(self, media: Path) -> Avatar:
            raise NotImplementedError

        def idle_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
            raise NotImplementedError

    with pytest.raises(TypeError, match="render"):
        NoRender()  # type: ignore[abstract]


def test_lifecycle_hooks_default_to_doing_nothing(tmp_path: Path) -> None:
    r = StillRenderer(tmp_path)
    assert r.fps == 25 and r.warm_up() is None
    assert asyncio.run(r.aclose()) is None
    assert not isinstance(r, VoiceCalibrated)  # a capability only the backends that have it declare
    mesh = MeshWarpRenderer(tmp_path)
    assert isinstance(mesh, Renderer) and isinstance(mesh, VoiceCalibrated)


def test_registration_is_the_same_for_every_renderer_and_shares_one_cache(tmp_path: Path) -> None:
    cache = tmp_path / "avatars"
    shared = register_avatar(bundled_avatar(), cache, 256)
    assert shared.id.endswith(f"-v{CACHE_VERSION}") and not shared.is_video
    assert shared.frame_landmarks.shape == (1, 478, 3) and shared.frame_landmarks.dtype == np.float32
    meta = json.loads((cache / shared.id / "meta.json").read_text())
    assert meta["frames"] == 1 and meta["size"] == list(shared.size) and meta["version"] == CACHE_VERSION
    # The chin is below the forehead and the nose tip between them: the named indices point where they say.
    y = shared.landmarks[:, 1]
    assert y[L.FOREHEAD] < y[L.NOSE_TIP] < y[L.INNER_LIP_TOP] < y[L.INNER_LIP_BOTTOM] < y[L.CHIN]

    via_still = StillRenderer(cache).register(bundled_avatar())
    via_mesh = MeshWarpRenderer(cache, max_side=256).register(bundled_avatar())
    for other in (via_still, via_mesh):
        assert other.id == shared.id
        np.testing.assert_array_equal(other.frames, shared.frames)
        np.testing.assert_array_equal(other.frame_landmarks, shared.frame_landmarks)
    assert sorted(p.name for p in (cache / shared.id).iterdir()) == ["landmarks.npz", "meta.json"]


def test_idle_clip_is_any_renderers_idle_loop_encoded_once(tmp_path: Path) -> None:
    r = StillRenderer(tmp_path)
    avatar = r.register(bundled_avatar())
    path = build_idle_clip(r, avatar, tmp_path)
    assert path == tmp_path / avatar.id / "idle.mp4"
    clip = decode_clip(path.read_bytes())
    assert len(clip.frames) == 10 and clip.fps == r.fps
    brightness = clip.frames.reshape(10, -1).mean(axis=1)
    assert (np.diff(brightness) > 3).all()  # the loop's own frames, in order
    stamp = path.stat().st_mtime_ns
    assert build_idle_clip(r, avatar, tmp_path) == path and path.stat().st_mtime_ns == stamp  # cached
