"""Where a clip is rendered and encoded: threads of the server's process, or worker processes of their own.

A render is numpy and OpenCV in many small steps per frame; between those steps the thread needs the GIL, and so
do the render-ahead thread beside it, x264's caller and the event loop. On two cores, 8 clips of 5.5 s rendered
and encoded two at a time made 13.5-14.3 s of speech per wall second in two threads, 19.3-20.6 in two processes
(the bundled avatar): the threads spent a third of their time waiting for each other. With 8 sessions speaking
at once the server made ~29 % more speech per second (BENCHMARKS.md, "Many sessions at once"). So by default
(``render_processes``) each render slot is a process that holds its own renderer; the server process keeps the
event loop, the TTS and the avatar registrations. A Redis-mode web node without a worker renders nothing and
starts none.

Both pools take the same call and give the same clip, byte for byte: a worker process learns each avatar and
each voice calibration the first time a job needs it (the server sends them along), renders with the same
renderer built from the same settings, and stops at its next frame when the reply is cancelled (a shared flag
the server sets when the reply's stop event is set). A worker that dies fails its clip like a crashed render
would and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from avatarchat.data import Speech
from avatarchat.encode import encode_clip
from avatarchat.errors import Cancelled, ConfigError
from avatarchat.pipeline.ahead import RenderAhead
from avatarchat.render.base import Avatar, Renderer, VoiceCalibrated

if TYPE_CHECKING:
    from avatarchat.settings import Settings

log = logging.getLogger(__name__)

#: Calibration samples per voice, in the order the server learnt them (a renderer falls back to the first).
Calibrations = Mapping[str | None, Mapping[str, Speech]]

AVATARS_KEPT = 8  # avatars a worker process keeps (LRU); the server sends an evicted one again when needed
_POLL_S = 0.02  # how often a waiting call looks at the reply's stop event
START_TIMEOUT_S = 120.0


def _touch(kept: OrderedDict[str, Any], key: str, value: Any) -> list[Any]:
    """Keep ``key`` as the most recently used of ``kept`` (at most ``AVATARS_KEPT``); returns the values evicted.
    The worker's avatars and the server's record of them follow this one rule, so they stay the same set."""
    kept[key] = value
    kept.move_to_end(key)
    return [kept.popitem(last=False)[1] for _ in range(len(kept) - AVATARS_KEPT)]


class Cancel(Protocol):
    def is_set(self) -> bool: ...


def render_encode(renderer: Renderer, path: Path, avatar: Avatar, speech: Speech, voice: str | None,
                  cancel: Cancel | None, beat: Callable[[], None]) -> tuple[float, float]:
    """Render (in a thread of its own, a few frames ahead: see pipeline/ahead.py) and encode one clip; returns
    the seconds spent rendering and encoding. ``beat`` is called at every frame (the stall check)."""
    beat()
    timed = _Timed(renderer.render(avatar, speech, cancel, voice=voice), beat)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with RenderAhead(timed) as frames:
        encode_clip(path, frames, speech.pcm, speech.sample_rate, renderer.fps, cancel=cancel)  # type: ignore[arg-type]
    return timed.seconds, time.perf_counter() - t0 - frames.waited_s


class _Timed:
    """Wraps a frame iterator and adds up the time spent producing frames (rendering, not encoding)."""

    def __init__(self, frames: Iterator[Any], beat: Callable[[], None]) -> None:
        self._frames = iter(frames)
        self._beat = beat
        self.seconds = 0.0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            return next(self._frames)
        finally:
            self.seconds += time.perf_counter() - t0
            self._beat()


class RenderPool(Protocol):
    """Renders and encodes clips, at most ``slots`` at once."""

    slots: int

    async def run(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None, stop: threading.Event,
                  calibrations: Calibrations) -> tuple[float, float]:
        """Render and encode one clip to ``path``; (render seconds, encode seconds). Raises ``Cancelled`` when
        ``stop`` is set before the clip is done."""
        ...

    async def warm_up(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None,
                      calibrations: Calibrations) -> None:
        """Render ``speech`` once in every worker that starts cold (the clip at ``path`` is deleted)."""
        ...

    def last_frame(self) -> float:
        """``time.monotonic()`` of the last frame any render produced (the stall check)."""
        ...

    async def aclose(self) -> None: ...


class ThreadRenderPool:
    """Renders in threads of this process, with this process's renderer (already calibrated by the server)."""

    def __init__(self, renderer: Renderer, slots: int) -> None:
        self.renderer = renderer
        self.slots = slots
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="avatarchat-work")
        self._last_frame = time.monotonic()

    async def run(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None, stop: threading.Event,
                  calibrations: Calibrations) -> tuple[float, float]:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, render_encode, self.renderer, path, avatar, speech, voice, stop, self._beat)

    async def warm_up(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None,
                      calibrations: Calibrations) -> None:
        """Nothing to do: the server's renderer has built the avatar's rig for the idle clip already."""

    def _beat(self) -> None:
        self._last_frame = time.monotonic()

    def last_frame(self) -> float:
        return self._last_frame

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- worker processes ------------------------------------------------------------------------------------------
@dataclass
class _Job:
    path: str
    speech: Speech
    voice: str | None
    avatar_id: str
    avatar: Avatar | None = None  # sent when the worker does not hold it
    calibrations: dict[str | None, Mapping[str, Speech]] = field(default_factory=dict)  # the voices it lacks


class _SharedFlag:
    """The cancel flag a worker process reads at every frame (``is_set``, like a ``threading.Event``)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def is_set(self) -> bool:
        return bool(self._value.value)


def _serve(settings: Settings, conn: Any, flag: Any, beat: Any) -> None:
    """A worker process: builds the renderer from settings, then renders jobs until told to stop (``None``) or
    until the server's end of the pipe closes."""
    from avatarchat.render import create_renderer
    from avatarchat.runtime import single_threaded_natives

    # One thread per BLAS / OpenCV call, as in the server process (runtime.py): a clip's render and encode
    # already run in two threads of their own.
    single_threaded_natives()
    renderer = create_renderer(settings)
    avatars: OrderedDict[str, Avatar] = OrderedDict()
    cancel = _SharedFlag(flag)

    def tick() -> None:
        beat.value = time.monotonic()

    conn.send(("ready",))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            if isinstance(renderer, VoiceCalibrated):
                for voice, samples in job.calibrations.items():
                    renderer.calibrate(voice, dict(samples))
            held = job.avatar if job.avatar is not None else avatars[job.avatar_id]
            for old in _touch(avatars, job.avatar_id, held):
                renderer.forget(old)
            result: tuple = ("ok", *render_encode(renderer, Path(job.path), held, job.speech,
                                                  job.voice, cancel, tick))
        except Cancelled:
            result = ("cancelled",)
        except Exception as exc:  # noqa: BLE001 - reported to the server, which fails the clip
            result = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(result)


class _Worker:
    """The server's handle on one worker process: what it has been sent, its pipe and its flags."""

    def __init__(self, ctx: Any, settings: Settings, number: int) -> None:
        self._conn, child = ctx.Pipe()
        self._flag = ctx.RawValue("b", 0)
        self.beat = ctx.RawValue("d", time.monotonic())
        self.process = ctx.Process(target=_serve, args=(settings, child, self._flag, self.beat),
                                   name=f"avatarchat-render-{number}", daemon=True)
        self.process.start()
        child.close()
        self.avatars: OrderedDict[str, None] = OrderedDict()  # mirrors the worker's LRU
        self.voices: set[str | None] = set()
        self.alive = True

    def wait_ready(self, timeout_s: float) -> None:
        if not self._conn.poll(timeout_s):
            raise ConfigError(f"render process {self.process.name} did not start within {timeout_s:.0f} s")
        try:
            self._conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(5.0)
            raise ConfigError(f"render process {self.process.name} exited at start "
                              f"(exit code {self.process.exitcode}); see the log above") from exc

    def job(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None,
            calibrations: Calibrations) -> _Job:
        """The message for this worker: with the avatar and the calibrations it has not been sent yet."""
        job = _Job(str(path), speech, voice, avatar.id)
        if avatar.id not in self.avatars:
            job.avatar = avatar
        _touch(self.avatars, avatar.id, None)
        for v, samples in calibrations.items():
            if v not in self.voices:
                job.calibrations[v] = samples
                self.voices.add(v)
        return job

    def call(self, job: _Job, stop: threading.Event) -> tuple:
        """Send ``job`` and wait for its result (a thread of the server waits here, not the event loop)."""
        self._flag.value = 0
        try:
            self._conn.send(job)
            while not self._conn.poll(_POLL_S):
                if stop.is_set():
                    self._flag.value = 1
            return self._conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.alive = False
            self.process.join(1.0)
            return ("died", self.process.exitcode)

    def cancel(self) -> None:
        self._flag.value = 1

    def stop(self, timeout_s: float = 2.0) -> None:
        self._flag.value = 1
        with contextlib.suppress(OSError, BrokenPipeError, ValueError):
            self._conn.send(None)
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout_s)
        self._conn.close()


class ProcessRenderPool:
    """One worker process per slot, started (spawned: no copy of this process's threads) with ``start``."""

    def __init__(self, settings: Settings, slots: int) -> None:
        self._settings = settings
        self.slots = slots
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] | None = None
        self._io = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="avatarchat-render-io")
        self._numbers = iter(range(1_000_000))
        self._last_frame = time.monotonic()
        self._closed = False
        self._replacing: set[asyncio.Task] = set()

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Spawn the workers and wait until each has built its renderer (``ConfigError`` if one cannot)."""
        self._idle = asyncio.Queue()
        self._workers = [_Worker(self._ctx, self._settings, next(self._numbers)) for _ in range(self.slots)]
        try:
            for w in self._workers:
                await asyncio.to_thread(w.wait_ready, timeout_s)
        except BaseException:
            await self.aclose()
            raise
        for w in self._workers:
            self._idle.put_nowait(w)
        log.info("%d render processes ready (pids %s)", self.slots,
                 ", ".join(str(w.process.pid) for w in self._workers))

    async def run(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None, stop: threading.Event,
                  calibrations: Calibrations) -> tuple[float, float]:
        if self._idle is None or self._closed:
            raise RuntimeError("the render processes are not running")
        worker = await self._idle.get()
        job = worker.job(path, avatar, speech, voice, calibrations)
        call = asyncio.get_running_loop().run_in_executor(self._io, worker.call, job, stop)
        try:
            result = await asyncio.shield(call)
        except asyncio.CancelledError:
            worker.cancel()  # the worker stops at its next frame; it is free once its answer is in
            call.add_done_callback(lambda _: self._done(worker))
            raise
        self._done(worker)
        kind = result[0]
        if kind == "ok":
            return result[1], result[2]
        if kind == "cancelled":
            raise Cancelled("render cancelled")
        if kind == "died":
            raise RuntimeError(f"the render process exited (exit code {result[1]}) while making a clip")
        raise RuntimeError(f"render process: {result[1]}")

    async def warm_up(self, path: Path, avatar: Avatar, speech: Speech, voice: str | None,
                      calibrations: Calibrations) -> None:
        """Every idle worker renders ``speech`` once, learning the avatar and the voices, and building the rig and
        whatever its first frame loads: a cold worker made a session's first clip ~50 ms later."""
        if self._idle is None:
            return
        loop = asyncio.get_running_loop()
        taken = [self._idle.get_nowait() for _ in range(self._idle.qsize())]

        async def one(number: int, worker: _Worker) -> None:
            target = path.with_name(f"{path.stem}-{number}{path.suffix}")
            try:
                job = worker.job(target, avatar, speech, voice, calibrations)
                result = await loop.run_in_executor(self._io, worker.call, job, threading.Event())
                if result[0] != "ok":
                    log.warning("render process %s failed its warm-up clip: %s", worker.process.name, result)
            finally:
                self._done(worker)
                target.unlink(missing_ok=True)

        await asyncio.gather(*(one(i, w) for i, w in enumerate(taken)))

    def _done(self, worker: _Worker) -> None:
        """A worker's call is over: back to the idle queue, or replaced if it died."""
        self._last_frame = max(self._last_frame, worker.beat.value)
        if self._closed or self._idle is None:
            return
        if worker.alive:
            self._idle.put_nowait(worker)
            return
        log.error("render process %s exited (exit code %s); starting another", worker.process.name,
                  worker.process.exitcode)
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: _Worker) -> None:
        fresh = _Worker(self._ctx, self._settings, next(self._numbers))
        self._workers = [fresh if w is dead else w for w in self._workers]
        try:
            await asyncio.to_thread(fresh.wait_ready, START_TIMEOUT_S)
        except ConfigError:
            log.exception("a replacement render process could not start")
            await asyncio.to_thread(fresh.stop)
            return
        if self._closed or self._idle is None:
            await asyncio.to_thread(fresh.stop)
            return
        self._idle.put_nowait(fresh)

    def last_frame(self) -> float:
        return max([self._last_frame, *(w.beat.value for w in self._workers)])

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self._workers))
        self._io.shutdown(wait=False, cancel_futures=True)
