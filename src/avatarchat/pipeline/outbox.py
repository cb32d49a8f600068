"""One WebSocket's outgoing events: a bounded queue, so a stalled client cannot hold memory or block others."""

from __future__ import annotations

import asyncio
from typing import Any

from avatarchat.pipeline.eventlog import event_key


class Outbox:
    """One WebSocket's outgoing events. Bounded, so a stalled client cannot hold memory or block others.

    A reconnecting page's outbox starts ``holding``: live events wait while the events it missed are read
    (from Redis, perhaps), then ``open`` puts those first and the held ones after, so the page gets every
    event once and in order. An event whose ``id`` is not past the page's ``floor`` (the last it has) is
    dropped: the page already has it.
    """

    def __init__(self, size: int = 256, holding: bool = False) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.overflowed = asyncio.Event()
        self._held: list[dict[str, Any]] | None = [] if holding else None
        self._floor: tuple[int, int] | None = None

    def put(self, event: dict[str, Any]) -> None:
        if self._held is not None:
            if len(self._held) >= self.queue.maxsize:
                self.overflowed.set()
            else:
                self._held.append(event)
            return
        event_id = event.get("id")
        if self._floor is not None and event_id is not None:
            if event_key(event_id) <= self._floor:
                return
            self._floor = event_key(event_id)
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()

    def open(self, first: list[dict[str, Any]], floor: str | None = None) -> None:
        """Stop holding: ``first`` goes out, then what was held; from now on nothing at or before ``floor``."""
        held, self._held = self._held or [], None
        self._floor = event_key(floor) if floor is not None else None
        for event in [*first, *held]:
            self.put(event)
