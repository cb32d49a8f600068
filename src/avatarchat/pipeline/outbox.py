"""One WebSocket's outgoing events: a bounded queue, so a stalled client cannot hold memory or block others."""

from __future__ import annotations

import asyncio
from typing import Any


class Outbox:
    """One WebSocket's outgoing events. Bounded, so a stalled client cannot hold memory or block others."""

    def __init__(self, size: int = 256) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.overflowed = asyncio.Event()

    def put(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()
