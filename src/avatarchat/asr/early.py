"""Answering a spoken turn at its pause, before the hangover has passed: when, and what becomes of it.

At the first silent window the listener transcribes the turn so far (the speculative transcript). If those words
are a finished sentence (``endpoint.ending``: the same rule that lets such a turn end after the short hangover)
and the silence has lasted ``listener.EARLY_AFTER_MS`` (150 ms: Whisper writes "What?" for the "What" of "What
time is it?", and pauses that short are mostly inside a sentence), the answer starts, provisionally (the server's
``early_answer``: nothing of it is shown or remembered yet). The turn then either ends at that pause and its final
transcript is those same words (the answer is *committed*: the page gets it at once), or the person goes on
speaking, or the final words differ (it is *discarded*, without a trace, and the turn is answered when it ends). A
finished sentence is the rule because a trailing "and" or "um" says the person is only drawing breath: starting
there would mostly be thrown away, while the finished-sentence guess is the one the turn ends on unless the person
goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from avatarchat.asr.endpoint import ending

Outcome = Literal["started", "committed", "discarded"]


class Early(Protocol):
    """An answer started early (the server's ``EarlyAnswer``)."""

    @property
    def message(self) -> str: ...

    async def commit(self) -> bool:
        """Release it as the turn's answer; False: it could not be (it is discarded; answer the turn anew)."""
        ...

    def discard(self) -> int:
        """Cancel it unseen; returns the clips it had rendered (wasted work)."""
        ...


class EarlyStarts:
    """One listener's early answers: at most one at a time, tied to the pause it started at. Counts them
    (``started``, ``committed``, ``discarded``; ``wasted_clips``: clips rendered for discarded ones) and tells
    ``on_outcome`` of each, for /metrics."""

    def __init__(self, start: Callable[[str], Early | None] | None,
                 on_outcome: Callable[[Outcome, int], None] | None = None) -> None:
        self._start, self._on_outcome = start, on_outcome
        self._pending: tuple[int, Early] | None = None
        self._considered: int | None = None
        self.started = self.committed = self.discarded = self.wasted_clips = 0

    @property
    def enabled(self) -> bool:
        return self._start is not None

    @property
    def considered(self) -> int | None:
        """The last pause whose words were considered (each pause once)."""
        return self._considered

    def consider(self, pause: int, text: str) -> None:
        """The speculative transcript of the words before the pause at sample ``pause`` is ``text``: start the
        answer if they are a finished sentence."""
        self._considered = pause
        if self._start is None or ending(text) != "finished":
            return
        self.drop()
        early = self._start(text)
        if early is not None:
            self._pending = (pause, early)
            self.started += 1
            self._tell("started")

    def drop(self) -> None:
        """The person went on speaking (or left): the pending answer, if any, is discarded."""
        if self._pending is not None:
            _, early = self._pending
            self._pending = None
            self.discard(early)

    def take(self, pause: int) -> Early | None:
        """The turn ended at the pause at sample ``pause``: the answer started there, if any (one started at
        another pause is discarded)."""
        if self._pending is not None and self._pending[0] == pause:
            early, self._pending = self._pending[1], None
            return early
        self.drop()
        return None

    async def settle(self, early: Early, final: str | None) -> bool:
        """The turn's final transcript is ``final`` (None: recognition failed): True when ``early`` was
        committed as its answer, False when it was discarded (answer the turn the ordinary way, if at all)."""
        if final is not None and early.message == final.strip():
            if await early.commit():
                self.committed += 1
                self._tell("committed")
                return True
            self.discarded += 1  # commit found it unusable and discarded it
            self._tell("discarded")
            return False
        self.discard(early)
        return False

    def discard(self, early: Early) -> None:
        """Discard ``early`` (taken with ``take``), unseen."""
        clips = early.discard()
        self.discarded += 1
        self.wasted_clips += clips
        self._tell("discarded", clips)

    def _tell(self, outcome: Outcome, clips: int = 0) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome, clips)
