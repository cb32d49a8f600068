"""Renders of different sessions run at once in worker threads and share the renderer's cached rigs (one per
avatar frame), so nothing a render writes may live in those shared objects: every frame rendered beside another
session must be byte for byte the frame rendered alone. Real Piper speech, the bundled avatar, CPU only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.render.base import Avatar
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.tts.piper import PiperTTS

TEXTS = (
    "Good morning! Shall we open the windows and walk around the old harbour before lunch?",
    "Music, moonlight and warm bread: who would ever refuse such a wonderful evening by the sea?",
)


@pytest.fixture(scope="module")
def speeches(tts: PiperTTS) -> list[Speech]:
    return [asyncio.run(tts.synthesize(t)) for t in TEXTS]


ROUNDS = 3  # each thread renders its speech this many times over, for more chances to interleave


def render_all(renderer: MeshWarpRenderer, avatar: Avatar, speech: Speech) -> list[bytes]:
    return [f.tobytes() for f in renderer.render(avatar, speech)]


def render_rounds(renderer: MeshWarpRenderer, avatar: Avatar, speech: Speech,
                  barrier: threading.Barrier) -> list[list[bytes]]:
    barrier.wait(timeout=60)  # both threads start rendering together
    return [render_all(renderer, avatar, speech) for _ in range(ROUNDS)]


def test_two_sessions_rendering_at_once_produce_the_frames_each_renders_alone(
        renderer: MeshWarpRenderer, avatar: Avatar, speeches: list[Speech]) -> None:
    serial = [render_all(renderer, avatar, sp) for sp in speeches]
    assert all(len(frames) > 100 for frames in serial)  # several seconds of speech each
    assert serial[0][40] != serial[1][40]  # different mouths, so a mix-up would show

    barrier = threading.Barrier(len(speeches))
    with ThreadPoolExecutor(max_workers=len(speeches)) as pool:
        futures = [pool.submit(render_rounds, renderer, avatar, sp, barrier) for sp in speeches]
        results = [f.result(timeout=300) for f in futures]
    for i, rounds in enumerate(results):
        assert len(rounds) == ROUNDS
        for r, frames in enumerate(rounds):
            assert len(frames) == len(serial[i])
            differing = [k for k, (a, b) in enumerate(zip(frames, serial[i], strict=True)) if a != b]
            assert not differing, (f"speech {i}, round {r}: {len(differing)} of {len(frames)} frames differ "
                                   f"from the serial render, first {differing[:5]}")


def test_cached_rig_arrays_cannot_be_written(renderer: MeshWarpRenderer, avatar: Avatar) -> None:
    """The rig is shared by every thread rendering this avatar: its arrays are read-only, so a render that tried
    to keep scratch data in them would fail at once instead of corrupting another session's frames."""
    rig = renderer.rig(avatar)
    assert renderer.rig(avatar) is rig
    frame = rig.frame(0.8, 0.2, 0.1, blink=0.5)
    assert frame.flags.writeable and not np.shares_memory(frame, rig.image)  # each frame is the caller's own
    parts = [rig, rig.mouth, rig.mouth.face, rig.mouth.warp, rig.eyes, rig.eyes.warp, rig.interior]
    arrays = {f"{type(o).__name__}.{k}": v for o in parts for k, v in vars(o).items() if isinstance(v, np.ndarray)}
    assert len(arrays) >= 20
    assert not [name for name, a in arrays.items() if a.flags.writeable]
