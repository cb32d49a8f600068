"""A Redis outage, as the web node's callers see it: ``StoreUnavailable`` (a 503, or an ``error`` event on a
socket) that says so, not a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import RedisError

from avatarchat.errors import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


async def reachable(command: Awaitable[T]) -> T:
    try:
        return await command
    except (RedisError, OSError) as exc:
        log.warning("Redis unreachable: %s", exc)
        raise StoreUnavailable(f"Redis unreachable: {exc}") from exc
