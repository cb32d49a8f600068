"""A session's events in Redis: a stream that records them and a channel that brings them at once.

``record`` runs one Lua script: XADD to the stream ``<p>:events:<session>`` (trimmed to ~``EVENT_LOG_SIZE``,
its TTL renewed), then PUBLISH of the event with its stream id on the channel of the same name. A script
runs alone, so the channel carries events in the stream's order: a node that subscribes, then reads the
stream from where it stood, then takes channel messages past that point, sees every event once and in order,
however long it was away (a Redis blip, a node joining) and whichever process wrote them (web nodes, workers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from avatarchat.distributed.keys import Keys, dumps, loads
from avatarchat.distributed.subscriber import Channel, Subscriber
from avatarchat.pipeline.eventlog import EVENT_LOG_SIZE, START, event_key

# KEYS[1]: the stream (and channel); ARGV: the event (a JSON object), MAXLEN, TTL in ms. The id goes first in
# the published object, spliced in as text so the event's own JSON is passed on untouched.
RECORD = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('PUBLISH', KEYS[1], '{"id":"' .. id .. '",' .. string.sub(ARGV[1], 2))
return id
"""
READ_BATCH = 500
WORKER_TTL_S = 60.0  # a worker's events: the web nodes set the stream's real TTL (session_idle_s)


class EventRecorder:
    """Writes events into sessions' streams; the TTL is only ever extended (a worker's shorter one never
    cuts a web node's)."""

    def __init__(self, redis: Redis, keys: Keys, ttl_s: float) -> None:
        self._keys = keys
        self._ttl_ms = int(max(1.0, ttl_s) * 1000)
        self._script = redis.register_script(RECORD)

    async def record(self, event: dict[str, Any]) -> str:
        """Record ``event`` (it names its session) and wake the nodes holding it; returns its id."""
        raw = await self._script(keys=[self._keys.events(event["session"])],
                                 args=[dumps(event), EVENT_LOG_SIZE, self._ttl_ms])
        return raw.decode() if isinstance(raw, bytes) else str(raw)


class EventStream:
    """One session's stream as a node reads it. ``position``: the id of the last event ``follow`` handed on
    (None before it first subscribed)."""

    def __init__(self, redis: Redis, keys: Keys, session_id: str) -> None:
        self._redis = redis
        self.key = keys.events(session_id)
        self.position: str | None = None

    async def attach(self, subscriber: Subscriber, on_message: Callable[[dict[str, Any]], None],
                     on_joined: Callable[[], None], on_lost: Callable[[BaseException], None]) -> None:
        """Hand every message of the channel to ``on_message`` (through the process's one ``subscriber``):
        events in the stream's order, each once, those recorded while the channel was away included; the nodes'
        own messages (no ``id``) as they come. Each (re)subscription first catches up from the stream, then
        calls ``on_joined``. Raises ``RedisError`` if Redis cannot be read to join (the caller retries)."""
        if self.position is None:  # joining: what came before is the other nodes' to tell (_sync)
            self.position = await self.tail()

        async def subscribed() -> None:
            for event in await self.since(self.position or START):
                self._take(event, on_message)
            on_joined()

        await subscriber.add(self.key, Channel(lambda raw: self._take(loads(raw), on_message), subscribed, on_lost))

    async def detach(self, subscriber: Subscriber) -> None:
        await subscriber.remove(self.key)

    def _take(self, msg: dict[str, Any], on_message: Callable[[dict[str, Any]], None]) -> None:
        event_id = msg.get("id")
        if isinstance(event_id, str):
            if self.position is not None and event_key(event_id) <= event_key(self.position):
                return  # read from the stream already
            self.position = event_id
        on_message(msg)

    async def tail(self) -> str:
        """The id of the newest event recorded (``START`` if none)."""
        last = await self._redis.xrevrange(self.key, count=1)
        return _id(last[0][0]) if last else START

    async def since(self, after: str) -> list[dict[str, Any]]:
        """Every event recorded after ``after``, oldest first."""
        events: list[dict[str, Any]] = []
        cursor = after
        while True:
            batch = [e for e in await self._range(cursor, "+", READ_BATCH) if e["id"] != cursor]
            if not batch:
                return events
            events += batch
            cursor = batch[-1]["id"]

    async def between(self, after: str, upto: str) -> tuple[list[dict[str, Any]], bool]:
        """The events with ``after < id <= upto`` and whether ``after`` is an event the stream still has (or
        ``START`` of a stream never trimmed). ``after`` past ``upto``: this node has not caught up with it yet."""
        if event_key(upto) <= event_key(after):
            return [], upto == after or bool(await self._redis.xrange(self.key, min=after, max=after))
        entries = await self._range(after, upto, 2 * EVENT_LOG_SIZE)
        found = bool(entries) and entries[0]["id"] == after
        if after == START:
            found = await self._redis.xlen(self.key) < EVENT_LOG_SIZE  # never trimmed: nothing dropped
        return [e for e in entries if e["id"] != after], found

    async def _range(self, low: str, high: str, count: int) -> list[dict[str, Any]]:
        entries = await self._redis.xrange(self.key, min=low, max=high, count=count)
        return [{"id": _id(entry_id), **loads(fields[b"e"])} for entry_id, fields in entries]


def _id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
