"""A session's recent events, so a page that reconnects catches up on what it missed while it was away.

Every event a session's page receives carries an ``id`` (``"<int>-<int>"``, increasing); the page reconnects
with the last one it saw (``/ws?after=<id>``) and gets the events after it, in order, once. Embedded, the log
is this ``MemoryLog``; in Redis mode it is the session's Redis stream (``distributed/redis_lane.py``), read by
whichever node the page reconnects to. Both keep the last ``EVENT_LOG_SIZE`` events or so.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Protocol

from avatarchat.errors import BadRequest

EVENT_LOG_SIZE = 256
START = "0-0"  # the position of a session that has had no event yet
EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def check_event_id(value: str) -> str:
    """An event id from the page; refused unless it has the shape the server gives (never used raw)."""
    if not isinstance(value, str) or not EVENT_ID.match(value):
        raise BadRequest("after must be the id of an event this session's socket sent (digits-digits).")
    return value


def event_key(event_id: str) -> tuple[int, int]:
    """Ids compare as pairs of integers (Redis stream ids do)."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class EventLog(Protocol):
    """The events of one session, as this process saw them."""

    @property
    def position(self) -> str:
        """The id of the last event handed to this process's sockets of the session (``START`` if none)."""
        ...

    async def between(self, after: str, upto: str) -> tuple[list[dict[str, Any]], bool]:
        """The events with ``after < id <= upto``, in order, and whether ``after`` is an event the log still
        has (False: the events after it were dropped, too old to keep, or it never was one)."""
        ...


class MemoryLog:
    """Embedded mode: the last ``size`` events of a session, in this process."""

    def __init__(self, size: int = EVENT_LOG_SIZE) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._count = 0

    @property
    def position(self) -> str:
        return f"0-{self._count}"

    def record(self, wire: dict[str, Any]) -> dict[str, Any]:
        """Give ``wire`` the next id and keep it; returns the event as the page receives it."""
        self._count += 1
        event = {"id": f"0-{self._count}", **wire}
        self._events.append(event)
        return event

    async def between(self, after: str, upto: str) -> tuple[list[dict[str, Any]], bool]:
        low, high = event_key(after), event_key(upto)
        oldest = (0, self._count - len(self._events))  # the id just before the oldest event kept
        known = oldest <= low <= event_key(self.position)
        return [e for e in self._events if low < event_key(e["id"]) <= high], known
