"""Earliest deadline first: which session's sentence gets the CPU next.

Every lane voices and renders its own sentences in order, but the CPU is shared. Served first come, first
served, a reply's first sentence waits behind every other session's later sentences, although those have
clips already playing to hide their wait and it has none. So each piece of CPU work (a TTS call, a render
and encode) holds one of a fixed number of slots (a ``Lease``), and a freed slot goes to the waiting work
whose clip must start playing soonest (``Reply.due``: a first sentence is due at its ``/chat``, a later one
when the clips before it will have played).

A lease can be passed on instead of freed (``DeadlineScheduler.may_pass_on``): a sentence that has just been
voiced keeps its slot for its own render when no waiting work is due earlier, so a first sentence is
rendered right after it is voiced instead of queueing behind every other session's first TTS.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Lease:
    """One held slot. ``release`` frees it once, however often it is called (every path of a stage that
    may end the work can call it without counting)."""

    def __init__(self, scheduler: DeadlineScheduler) -> None:
        self._scheduler: DeadlineScheduler | None = scheduler

    def release(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler._free_one()


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
    async def slot(self, due: float) -> AsyncIterator[Lease]:
        lease = await self.acquire(due)
        try:
            yield lease
        finally:
            lease.release()

    async def acquire(self, due: float) -> Lease:
        """Wait for a slot; the caller releases the lease (or passes it on) when its work is over."""
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return Lease(self)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (due, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._free_one()  # granted just as it was cancelled: pass the slot on
            raise
        return Lease(self)

    def overdue_s(self, now: float) -> float:
        """How far past its deadline the most urgent waiting work is (0: nothing waits, or nothing late)."""
        self._drop_settled()
        return max(0.0, now - self._waiting[0][0]) if self._waiting else 0.0

    def may_pass_on(self, due: float) -> bool:
        """Whether a lease holder may keep its slot for its next piece of work, due at ``due``: only when no
        waiting work is due earlier (EDF would give that work the slot)."""
        self._drop_settled()
        return not self._waiting or self._waiting[0][0] >= due

    def _drop_settled(self) -> None:
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)

    def _free_one(self) -> None:
        self._drop_settled()
        if self._waiting:
            _, _, fut = heapq.heappop(self._waiting)
            fut.set_result(None)  # the slot passes straight to the earliest deadline
            return
        self._free += 1
