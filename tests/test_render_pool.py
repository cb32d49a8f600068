"""Render worker processes (pipeline/render_pool.py, the default): the clip a worker process makes is the clip a
thread of the server makes, a cancelled reply stops the worker within a few frames, a worker that dies fails only
its own clip and is replaced, and the server started with its defaults speaks through them. Real Piper speech, the
bundled avatar with head motion on, real spawned processes, MP4s decoded back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import OrderedDict
from pathlib import Path

import pytest

from avatarchat.data import Speech
from avatarchat.errors import Cancelled
from avatarchat.pipeline.render_pool import AVATARS_KEPT, ProcessRenderPool, ThreadRenderPool, _touch
from avatarchat.render import create_renderer
from avatarchat.render.base import Avatar, frame_count
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import Settings, bundled_avatar
from avatarchat.tts.piper import PiperTTS
from tests.helpers import decode_clip

VOICE = "piper:en_US-joe-medium"
LONG = ("Good morning! Shall we open the windows and walk around the old harbour before lunch, or would you rather "
        "stay inside with a cup of tea and the newspaper until the rain has stopped for good?")


@pytest.fixture(scope="module")
def moving(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The default head motion (the shared settings keep a still head), in a data dir of its own."""
    return settings.model_copy(update={"motion_scale": 1.0, "data_dir": tmp_path_factory.mktemp("pool")})


@pytest.fixture(scope="module")
def speech(tts: PiperTTS) -> Speech:
    return asyncio.run(tts.synthesize("Thanks for asking. I can help you plan the trip, or book a table."))


@pytest.fixture(scope="module")
def calibrations(tts: PiperTTS, renderer: MeshWarpRenderer) -> dict[str | None, dict[str, Speech]]:
    words = renderer.calibration_words(VOICE)
    return {VOICE: {shape: asyncio.run(tts.synthesize(word)) for shape, word in words.items()}}


@pytest.fixture(scope="module")
def face(moving: Settings) -> Avatar:
    return create_renderer(moving).register(bundled_avatar())


async def started(settings: Settings, slots: int = 1) -> ProcessRenderPool:
    pool = ProcessRenderPool(settings, slots)
    await pool.start()
    return pool


async def both_ways(settings: Settings, face: Avatar, speech: Speech, voice: str, calibrations, out: Path,
                    again: bool = False) -> tuple[tuple[float, float], list[Path]]:
    """``speech`` rendered by a worker process and by a thread of a renderer calibrated as the server's is (and,
    with ``again``, a second time by the same worker): the worker's timings and the clips, worker's first."""
    here = create_renderer(settings)
    here.calibrate(VOICE, calibrations[VOICE])  # type: ignore[attr-defined]
    threads = ThreadRenderPool(here, 1)
    pool = await started(settings)
    paths = [out / "p.mp4", out / "t.mp4"] + ([out / "p2.mp4"] if again else [])
    try:
        stop = threading.Event()
        timings = await pool.run(paths[0], face, speech, voice, stop, calibrations)
        await threads.run(paths[1], face, speech, voice, stop, calibrations)
        if again:  # the avatar and the voice are not sent to the worker a second time
            await pool.run(paths[2], face, speech, voice, stop, calibrations)
    finally:
        await pool.aclose()
        await threads.aclose()
    return timings, paths


async def test_a_clip_from_a_worker_process_is_the_clip_a_thread_renders(moving, face, speech, calibrations,
                                                                          tmp_path) -> None:
    (render_s, encode_s), paths = await both_ways(moving, face, speech, VOICE, calibrations, tmp_path, again=True)
    assert render_s > 0 and encode_s > 0
    a, b, c = (decode_clip(p.read_bytes()) for p in paths)
    assert len(a.frames) == len(b.frames) == frame_count(speech.duration_s, 25)
    assert (a.frames == b.frames).all() and (c.frames == b.frames).all()
    assert (a.frames[0] != a.frames[len(a.frames) // 2]).any()  # a moving face, so a mix-up would show
    assert abs(a.audio_duration_s - speech.duration_s) < 0.1


async def test_a_worker_without_a_voice_calibration_renders_with_the_first_one_like_the_server(
        moving, face, speech, calibrations, tmp_path) -> None:
    _, paths = await both_ways(moving, face, speech, "espeak:ko", calibrations, tmp_path)
    a, b = (decode_clip(p.read_bytes()) for p in paths)
    assert (a.frames == b.frames).all()


async def test_a_cancelled_reply_stops_the_worker_within_a_few_frames_and_the_worker_goes_on(
        moving, face, tts, calibrations, tmp_path) -> None:
    long = await tts.synthesize(LONG)
    pool = await started(moving)
    try:
        stop = threading.Event()
        run = asyncio.create_task(pool.run(tmp_path / "c.mp4", face, long, VOICE, stop, calibrations))
        await asyncio.sleep(0.3)  # well into the clip (~8 s of speech: ~1 s of work on one core)
        assert not run.done()
        stop.set()
        t0 = time.perf_counter()
        with pytest.raises(Cancelled):
            await run
        assert time.perf_counter() - t0 < 1.0  # a frame or two (the whole clip is ~1 s of work on one core)
        assert not (tmp_path / "c.mp4").exists()  # no half-written clip left
        short = await tts.synthesize("And now the next one.")
        await pool.run(tmp_path / "n.mp4", face, short, VOICE, threading.Event(), calibrations)
    finally:
        await pool.aclose()
    assert len(decode_clip((tmp_path / "n.mp4").read_bytes()).frames) == frame_count(short.duration_s, 25)


async def test_a_task_cancelled_while_its_worker_renders_frees_the_worker_for_the_next_clip(
        moving, face, tts, calibrations, tmp_path) -> None:
    long = await tts.synthesize(LONG)
    short = await tts.synthesize("Next.")
    pool = await started(moving)
    try:
        run = asyncio.create_task(pool.run(tmp_path / "c.mp4", face, long, VOICE, threading.Event(), calibrations))
        await asyncio.sleep(0.3)
        run.cancel()  # the lane's task is cancelled (shutdown): the worker must stop, not render on unseen
        with pytest.raises(asyncio.CancelledError):
            await run
        await asyncio.wait_for(pool.run(tmp_path / "n.mp4", face, short, VOICE, threading.Event(), calibrations), 30)
    finally:
        await pool.aclose()
    assert (tmp_path / "n.mp4").exists()
    assert not (tmp_path / "c.mp4").exists()  # the abandoned clip was stopped, not rendered to its end unseen


async def test_a_worker_that_dies_fails_its_clip_and_another_takes_its_place(moving, face, tts, speech,
                                                                              calibrations, tmp_path) -> None:
    long = await tts.synthesize(LONG)
    pool = await started(moving)
    try:
        (pid,) = pool.pids
        run = asyncio.create_task(pool.run(tmp_path / "d.mp4", face, long, VOICE, threading.Event(), calibrations))
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="render process exited"):
            await run
        # the replacement learns the avatar and the voice again: its clip is whole
        await asyncio.wait_for(pool.run(tmp_path / "n.mp4", face, speech, VOICE, threading.Event(), calibrations),
                               60)
        assert pool.pids != [pid]
    finally:
        await pool.aclose()
    assert len(decode_clip((tmp_path / "n.mp4").read_bytes()).frames) == frame_count(speech.duration_s, 25)


async def test_closing_the_pool_ends_its_processes(moving) -> None:
    pool = await started(moving, slots=2)
    pids = pool.pids
    assert len(set(pids)) == 2
    await pool.aclose()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_the_avatars_a_worker_keeps_are_the_most_recent_ones_and_the_evicted_are_returned() -> None:
    """The worker forgets what ``_touch`` returns and the server re-sends an avatar it no longer records: one rule."""
    kept: OrderedDict[str, str] = OrderedDict()
    evicted = [old for i in range(AVATARS_KEPT + 2) for old in _touch(kept, f"a{i}", f"face{i}")]
    assert evicted == ["face0", "face1"] and list(kept) == [f"a{i}" for i in range(2, AVATARS_KEPT + 2)]
    assert _touch(kept, "a2", "face2") == [] and list(kept)[-1] == "a2"  # used again: now the most recent
    assert _touch(kept, "new", "faceN") == ["face3"]  # so the next one out is the oldest other
