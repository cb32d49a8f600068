"""The ASR threads, shared fairly between the sockets that send audio.

A thread pool's FIFO queue lets one socket that pauses every 0.4 s queue a Whisper run per pause, each over its
whole turn so far, ahead of everyone else (issue 17: another user's transcript took 20 s, memory grew without
bound). Here every owner (one listener) has at most one transcription running and at most one speculative one
waiting (a newer one supersedes it: the older is dropped unstarted) plus a short queue of finals. Free threads go
round-robin between owners, finals before speculative work, so a socket's wait is bounded by the number of
sockets, never by what one of them sends. Time spent is counted per owner.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from avatarchat.asr.base import ASR, Transcript

FINALS_WAITING = 2  # finished turns one socket may have waiting; more means turns come faster than recognised


class Superseded(Exception):
    """A waiting speculative transcription replaced by a newer one of the same owner (never started)."""


class TooMuchSpeech(Exception):
    """A finished turn dropped: its owner had ``FINALS_WAITING`` more turns waiting for recognition."""


@dataclass(eq=False)
class _Job:
    owner: Hashable
    audio: np.ndarray
    future: asyncio.Future
    final: bool
    language: str | None = None


@dataclass(eq=False)
class _Owner:
    running: bool = False
    gone: bool = False
    guess: _Job | None = None
    finals: deque[_Job] = field(default_factory=deque)
    language: Callable[[], str | None] | None = None  # what its audio is heard as, asked at each call


class AsrBudget:
    """``threads`` ASR calls at a time, shared round-robin; ``on_spent(owner, seconds)`` after each call."""

    def __init__(self, asr: ASR, language: str | None, threads: int,
                 on_spent: Callable[[Hashable, float], None] | None = None) -> None:
        self.asr, self.language, self.threads = asr, language, threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="avatarchat-asr")
        self._on_spent = on_spent
        self._owners: dict[Hashable, _Owner] = {}  # insertion order is the round-robin order
        self.running = 0

    @property
    def pending(self) -> int:
        """Transcriptions waiting for a thread, over all owners (bounded: at most 1 + FINALS_WAITING each)."""
        return sum(len(o.finals) + (o.guess is not None) for o in self._owners.values())

    def hears(self, owner: Hashable, language: Callable[[], str | None]) -> None:
        """``owner``'s audio is heard in the language ``language()`` names when each call is queued (a session's
        voice can change between turns); without it, in ``self.language``."""
        self._owners.setdefault(owner, _Owner()).language = language

    def transcribe(self, owner: Hashable, audio: np.ndarray, final: bool) -> asyncio.Future[Transcript]:
        """Queue ``audio`` for ``owner``; a speculative call (``final`` False) replaces its waiting one."""
        state = self._owners.setdefault(owner, _Owner())
        language = state.language() if state.language is not None else self.language
        job = _Job(owner, audio, asyncio.get_running_loop().create_future(), final, language)
        if final:
            if len(state.finals) >= FINALS_WAITING:
                _fail(state.finals.popleft(), TooMuchSpeech("speech came faster than it could be recognised"))
            state.finals.append(job)
        else:
            if state.guess is not None:
                _fail(state.guess, Superseded())
            state.guess = job
        self._dispatch()
        return job.future

    def promote(self, future: asyncio.Future) -> None:
        """The speculative call behind ``future`` is now the turn's final: it waits with the finals."""
        for state in self._owners.values():
            if state.guess is not None and state.guess.future is future:
                job, state.guess = state.guess, None
                job.final = True
                state.finals.append(job)
                self._dispatch()
                return

    def withdraw(self, future: asyncio.Future) -> None:
        """The speculative call behind ``future`` is no longer wanted: dropped if it has not started."""
        for state in self._owners.values():
            if state.guess is not None and state.guess.future is future:
                state.guess = None
                future.cancel()
                return

    def forget(self, owner: Hashable) -> None:
        """The owner is gone: its waiting work is dropped (a running call finishes and is thrown away)."""
        state = self._owners.get(owner)
        if state is None:
            return
        for job in [*state.finals, *([state.guess] if state.guess else [])]:
            job.future.cancel()
        state.finals.clear()
        state.guess = None
        if state.running:
            state.gone = True  # removed when its running call ends
        else:
            del self._owners[owner]

    def close(self) -> None:
        for owner in list(self._owners):
            self.forget(owner)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling -----------------------------------------------------------------------------------------
    def _next(self) -> _Job | None:
        for want_final in (True, False):
            for owner, state in self._owners.items():
                if state.running:
                    continue
                if want_final and state.finals:
                    job = state.finals.popleft()
                elif not want_final and state.guess is not None:
                    job, state.guess = state.guess, None
                else:
                    continue
                self._owners[owner] = self._owners.pop(owner)  # to the back of the round
                return job
        return None

    def _dispatch(self) -> None:
        while self.running < self.threads and (job := self._next()) is not None:
            self.running += 1
            self._owners[job.owner].running = True
            asyncio.ensure_future(self._run(job))

    async def _run(self, job: _Job) -> None:
        t0 = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, self.asr.transcribe, job.audio,
                                                                      job.language)
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for it
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            self.running -= 1
            spent = time.perf_counter() - t0
            state = self._owners.get(job.owner)
            if state is not None:
                state.running = False
                del self._owners[job.owner]
                if not state.gone:
                    self._owners[job.owner] = state  # behind everyone, those who came while it ran included
            if self._on_spent is not None:
                self._on_spent(job.owner, spent)
            self._dispatch()


def _fail(job: _Job, exc: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
        job.future.exception()  # retrieved: whoever still awaits it gets it, nobody else is warned about it
