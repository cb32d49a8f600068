"""Earliest deadline first: which session's sentence gets the CPU next.

Every lane voices and renders its own sentences in order, but the CPU is shared. Served first come, first
served, a reply's first sentence waits behind every other session's later sentences, although those have
clips already playing to hide their wait and it has none. So each piece of CPU work (a TTS call, a render
and encode) asks ``DeadlineScheduler.slot(due)`` for one of a fixed number of slots, and a freed slot goes
to the waiting work whose clip must start playing soonest (``Reply.due``: a first sentence is due at its
``/chat``, a later one when the clips before it will have played).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DeadlineScheduler:
    """At most ``slots`` pieces of work at once; waiting work starts in order of its deadline (monotonic
    seconds; ties in arrival order). Cancelling a waiter removes it; cancelling a holder frees its slot."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a scheduler needs at least one slot")
        self.slots = slots
        self._free = slots
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiting if not f.done())

    @property
    def running(self) -> int:
        return self.slots - self._free

    @asynccontextmanager
    async def slot(self, due: float) -> AsyncIterator[None]:
        await self.acquire(due)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, due: float) -> None:
        """Wait for a slot; every ``acquire`` that returns must be paired with one ``release``."""
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (due, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as it was cancelled: pass the slot on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the earliest deadline
                return
        self._free += 1
