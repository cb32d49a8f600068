"""A session's turns, run as tasks of the session rather than of whoever asked.

A turn (a typed ``POST /chat`` or a spoken transcript) used to run in its caller's task: the socket's listener or
the HTTP request. A reload, or a network blip that closes the socket, then cancelled the answer half-written,
sent no reply text and left the question unanswered in history. Here the session owns the task: the caller
waits for it (``run``), and the caller going away leaves the turn running; only the session's own end
(``aclose``: reaped, evicted, shut down) cancels it. Like livekit's ``SpeechHandle``, nobody else touches the
tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from avatarchat.errors import AvatarChatError, UnknownSession

log = logging.getLogger(__name__)
T = TypeVar("T")


class Turns:
    """The tasks of one session's turns (and of the saves its barge-ins need)."""

    def __init__(self, label: str) -> None:
        self.label = label  # the session's, for logs
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as the session's; a closed session starts nothing (``UnknownSession``)."""
        if self._closed:
            work.close()
            raise UnknownSession("This session has ended (it expired, or the server is restarting); start a new "
                                 "one with POST /session.")
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Start ``work`` and wait for its result. Cancelling the caller does not cancel the turn."""
        return await asyncio.shield(self.start(work))

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here too: the caller that would have may be gone
        if exc is not None and not isinstance(exc, AvatarChatError):
            log.error("a turn of session %s… failed", self.label, exc_info=exc)

    async def aclose(self) -> None:
        """The session ends: cancel its turns and wait for them (each leaves history alternating)."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
