"""One Redis pub/sub connection per process, shared by every session it holds.

Why: a pub/sub subscription holds a connection of its own. With one per session, redis-py's pool (100
connections) ran dry at about 100 sessions while ``max_sessions`` is 200: 110 sessions made in 0.6 s left every
new user without events for two minutes, while ``/healthz`` said ok. Here sessions add and remove channels on
one subscription; its reader hands each message to the channel's handlers. When the connection drops, every
channel hears ``on_lost``; after the resubscribe each one's ``on_subscribed`` runs (a session's stream catches up
there, see event_stream.py) before any later message of that channel is handed on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
RETRY_S = 1.0


@dataclass
class Channel:
    on_message: Callable[[bytes], None]
    on_subscribed: Callable[[], Awaitable[None]]
    on_lost: Callable[[BaseException], None]


class Subscriber:
    def __init__(self, redis: Redis, anchor: str) -> None:
        """``anchor``: a channel of this process's own, subscribed first so the connection stays open (and
        readable) while no session is held."""
        self._redis = redis
        self._anchor = anchor
        self._channels: dict[str, Channel] = {}
        self._sub: Any = None  # the live PubSub while connected
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def channels(self) -> int:
        return len(self._channels)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-subscriber")

    async def add(self, name: str, channel: Channel) -> None:
        """Start handing ``name``'s messages to ``channel`` (its ``on_subscribed`` runs once Redis confirms)."""
        self.start()
        self._channels[name] = channel
        if self._sub is not None:
            try:
                await self._sub.subscribe(name)
            except (RedisError, OSError) as exc:  # the reader reconnects and subscribes every channel again
                log.debug("subscribe %s deferred: %s", name, exc)

    async def remove(self, name: str) -> None:
        if self._channels.pop(name, None) is not None and self._sub is not None:
            try:
                await self._sub.unsubscribe(name)
            except (RedisError, OSError):
                pass  # gone with the connection anyway

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as sub:
                    self._sub = sub  # first: a channel added meanwhile is subscribed by add() (twice is harmless)
                    await sub.subscribe(self._anchor, *self._channels)
                    async for message in sub.listen():
                        await self._take(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._sub = None
                log.warning("lost the Redis event subscription (%s); resubscribing in %.0f s", exc, RETRY_S)
                for channel in list(self._channels.values()):
                    channel.on_lost(exc)
                await asyncio.sleep(RETRY_S)

    async def _take(self, message: dict[str, Any]) -> None:
        name = message.get("channel")
        name = name.decode() if isinstance(name, bytes) else name
        channel = self._channels.get(name)
        if channel is None:
            return
        kind = message.get("type")
        if kind == "subscribe":
            await channel.on_subscribed()
        elif kind == "message":
            channel.on_message(message["data"])

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._sub = None
