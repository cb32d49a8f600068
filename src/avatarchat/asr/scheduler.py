"""Speech recognition shared fairly: every socket's transcriptions go through one bounded scheduler.

Why: each pause in someone's speech starts a speculative transcription of the turn so far. With a plain thread
pool those piled up without bound (audio alternating 300 ms of speech with 100 ms of silence queued a new Whisper
run every ~0.3 s and never cancelled one), so one client delayed everyone's transcripts by tens of seconds and the
queued audio grew the server's memory. Here:

- a socket (a *listener*) has at most one transcription running; its newer request supersedes an older one not
  yet started (that one raises ``Superseded``), except finals (what a finished turn said), which are kept, in
  order, up to ``MAX_FINALS`` waiting (more raise ``TooFast``: nothing is dropped silently);
- the ``threads`` recognition slots go round-robin between clients (addresses), and between a client's sockets,
  so sixteen sockets of one client weigh as one;
- the CPU time of every transcription is counted for the listener (and so its client) that asked.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from avatarchat.asr.base import Transcript

MAX_FINALS = 2  # finished turns of one socket waiting for recognition


class Superseded(Exception):
    """A newer request of the same listener took this one's place before it started."""


class TooFast(Exception):
    """A listener has more finished turns waiting than the recognizer may queue for it."""


@dataclass(eq=False)
class Owner:
    """Who asks: a socket (``listener``) of a client address (``client``); CPU seconds spent on its behalf."""

    client: str
    cpu_s: float = 0.0
    jobs: int = 0


@dataclass(eq=False)
class _Job:
    owner: Owner
    audio: np.ndarray
    final: bool
    future: asyncio.Future = field(repr=False)


class FairRecognizer:
    def __init__(self, transcribe: Callable[[np.ndarray], Transcript], threads: int,
                 on_cpu: Callable[[float], None] | None = None) -> None:
        self._transcribe = transcribe
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="avatarchat-asr")
        self._free = threads
        self._on_cpu = on_cpu or (lambda s: None)
        # client -> (owner -> its waiting jobs); both orders are the round-robin turns
        self._waiting: OrderedDict[str, OrderedDict[Owner, deque[_Job]]] = OrderedDict()
        self._running: set[Owner] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    def waiting(self) -> int:
        return sum(len(q) for owners in self._waiting.values() for q in owners.values())

    def submit(self, owner: Owner, audio: np.ndarray, final: bool) -> asyncio.Future:
        """Queue ``audio`` for ``owner``; the future gives its ``Transcript`` (or ``Superseded`` / ``TooFast``)."""
        future = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(owner.client, OrderedDict()).setdefault(owner, deque())
        for job in [j for j in queue if not j.final]:  # anything newer makes an unstarted guess or partial moot
            queue.remove(job)
            if not job.future.done():
                job.future.set_exception(Superseded())
        if final and sum(j.final for j in queue) >= MAX_FINALS:
            future.set_exception(TooFast())
        else:
            queue.append(_Job(owner, audio, final, future))
        self._dispatch()
        return future

    def forget(self, owner: Owner) -> None:
        """The listener is gone: drop what it still had waiting."""
        owners = self._waiting.get(owner.client)
        if owners is None:
            return
        for job in owners.pop(owner, ()):
            job.future.cancel()
        if not owners:
            del self._waiting[owner.client]

    def _next(self) -> _Job | None:
        for client in list(self._waiting):
            owners = self._waiting[client]
            for owner in list(owners):
                queue = owners[owner]
                while queue and queue[0].future.done():  # cancelled by its listener meanwhile
                    queue.popleft()
                if not queue:
                    del owners[owner]
                    continue
                if owner in self._running:
                    continue
                job = queue.popleft()
                if not queue:
                    del owners[owner]
                else:
                    owners.move_to_end(owner)  # its next turn comes after its client's other sockets
                if not owners:
                    del self._waiting[client]
                else:
                    self._waiting.move_to_end(client)  # and after every other client
                return job
            if not owners:
                self._waiting.pop(client, None)
        return None

    def _dispatch(self) -> None:
        while self._free > 0:
            job = self._next()
            if job is None:
                return
            self._free -= 1
            self._running.add(job.owner)
            work = asyncio.get_running_loop().run_in_executor(self._pool, self._timed, job.audio)
            work.add_done_callback(lambda done, job=job: self._finished(job, done))

    def _timed(self, audio: np.ndarray) -> tuple[Transcript, float]:
        t0 = time.thread_time()
        result = self._transcribe(audio)
        return result, time.thread_time() - t0

    def _finished(self, job: _Job, done: asyncio.Future) -> None:
        self._free += 1
        self._running.discard(job.owner)
        if done.cancelled():
            job.future.cancel()
        elif done.exception() is not None:
            if not job.future.done():
                job.future.set_exception(done.exception())
        else:
            result, cpu = done.result()
            job.owner.cpu_s += cpu
            job.owner.jobs += 1
            self._on_cpu(cpu)
            if not job.future.done():
                job.future.set_result(result)
        self._dispatch()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
