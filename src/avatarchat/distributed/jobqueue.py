"""The speech jobs of every web node, claimed by every worker earliest deadline first, in Redis Streams.

A job is added to the stream of its deadline's bucket: its due time (wall-clock seconds, the same on every
machine; a first sentence is due at its ``/chat``, a later one when the clips before it will have played)
floored to ``BUCKET_S``. Each bucket stream has the consumer group ``workers``. Two sorted sets, scored by
bucket time, list the buckets: ``jobs:due`` those that may still hold a job nobody claimed, ``jobs:active``
every one that still holds entries (unclaimed, or claimed and not yet acknowledged).

A worker claims with ``XREADGROUP`` from the earliest bucket that yields, takes over a dead worker's job
with ``XAUTOCLAIM`` in the same order, and acknowledges with ``XACK`` + ``XDEL``; acknowledging the last
entry of a bucket deletes its stream. Each of these is one Lua script, so a bucket is never deleted while a
job is being added to it. Every added job also pushes a token on ``jobs:wake``: an idle worker waits on it
with ``BLPOP`` and claims the moment a job arrives, without polling.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from avatarchat.distributed.keys import GROUP, Keys, dumps, loads

BUCKET_S = 0.25  # jobs due within the same quarter second are taken in arrival order
PAGE = 16  # buckets a claim looks at per round trip
WAKE_MAX = 1000  # tokens kept on the wake list (more would only wake idle workers that find nothing)
ORPHAN_MIN_IDLE_MS = 300  # a dead worker's job untouched this long may be taken (once: taking it resets this)

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
end
local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('ZADD', KEYS[3], ARGV[3], KEYS[1])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
return id
"""

# KEYS[1]: jobs:due; KEYS[2..]: bucket streams, earliest first. A bucket with nothing left to claim leaves
# jobs:due (it stays in jobs:active until its claimed entries are acknowledged).
_CLAIM = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[i], '>')
    if got then
      local entry = got[1][2][1]
      return {KEYS[i], entry[1], entry[2]}
    end
  end
  redis.call('ZREM', KEYS[1], KEYS[i])
end
return false
"""

# KEYS[1]: jobs:active; KEYS[2..]: bucket streams, earliest first; ARGV[3]: idle time (ms) that marks a
# claimed job's worker dead.
_RECLAIM = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local cursor = '0-0'
    repeat
      local got = redis.call('XAUTOCLAIM', KEYS[i], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)
      local entry = got[2][1]
      if entry then
        return {KEYS[i], entry[1], entry[2]}
      end
      cursor = got[1]
    until cursor == '0-0'
  else
    redis.call('ZREM', KEYS[1], KEYS[i])
  end
end
return false
"""

# An entry is deleted only once acknowledged, so an empty stream has nothing waiting and nothing pending.
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('ZREM', KEYS[3], KEYS[1])
end
return 1
"""


@dataclass(frozen=True)
class Claimed:
    stream: str
    entry_id: bytes
    job: dict[str, Any]


class JobQueue:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis, self._keys = redis, keys
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)
        self._reclaim = redis.register_script(_RECLAIM)
        self._ack = redis.register_script(_ACK)

    async def add(self, job: dict[str, Any], due: float) -> None:
        """Queue ``job`` (a dict, as JSON) to be done by ``due`` (wall-clock seconds)."""
        bucket = math.floor(due / BUCKET_S)
        k = self._keys
        await self._add(keys=[k.jobs_bucket(bucket), k.jobs_due, k.jobs_active, k.jobs_wake],
                        args=[GROUP, dumps(job), bucket * BUCKET_S, WAKE_MAX])

    async def claim(self, consumer: str) -> Claimed | None:
        """The unclaimed job due soonest, now claimed by ``consumer``; None when there is none."""
        while True:
            buckets = await self._redis.zrange(self._keys.jobs_due, 0, PAGE - 1)
            if not buckets:
                return None
            got = await self._claim(keys=[self._keys.jobs_due, *buckets], args=[GROUP, consumer])
            if got:
                return _claimed(got)
            if len(buckets) < PAGE:
                return None  # every bucket looked at was drained (and left jobs:due); a full page: look further

    async def reclaim(self, consumer: str, min_idle_ms: int) -> Claimed | None:
        """The claimed job due soonest whose worker has not touched it for ``min_idle_ms``, now ``consumer``'s."""
        buckets = await self._redis.zrange(self._keys.jobs_active, 0, -1)
        if not buckets:
            return None
        got = await self._reclaim(keys=[self._keys.jobs_active, *buckets], args=[GROUP, consumer, min_idle_ms])
        return _claimed(got) if got else None

    async def orphaned(self, consumer: str, alive: Callable[[str], Awaitable[bool]],
                       min_idle_ms: int = ORPHAN_MIN_IDLE_MS) -> Claimed | None:
        """A job claimed by a worker whose heartbeat has stopped (``alive`` says no), earliest bucket first,
        now ``consumer``'s: a killed worker's jobs move on within a heartbeat's lifetime instead of waiting out
        the visibility timeout. ``min_idle_ms`` keeps two workers from taking the same job (the first claim
        resets its idle time)."""
        for bucket in await self._redis.zrange(self._keys.jobs_active, 0, -1):
            try:
                summary = await self._redis.xpending(bucket, GROUP)
            except ResponseError:
                continue  # drained and deleted meanwhile
            for row in summary.get("consumers") or []:
                name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
                if name == consumer or await alive(name):
                    continue
                pending = await self._redis.xpending_range(bucket, GROUP, min="-", max="+", count=1,
                                                           consumername=name)
                if not pending:
                    continue
                got = await self._redis.xclaim(bucket, GROUP, consumer, min_idle_ms, [pending[0]["message_id"]])
                if got and got[0] and got[0][1]:
                    entry_id, fields = got[0]
                    return Claimed(bucket.decode() if isinstance(bucket, bytes) else bucket, entry_id,
                                   loads(fields[b"job"]))
        return None

    async def touch(self, claimed: Claimed, consumer: str) -> None:
        """Reset the job's idle time, so nobody reclaims it from a live worker."""
        await self._redis.xclaim(claimed.stream, GROUP, consumer, 0, [claimed.entry_id], justid=True)

    async def ack(self, claimed: Claimed) -> None:
        k = self._keys
        await self._ack(keys=[claimed.stream, k.jobs_due, k.jobs_active], args=[GROUP, claimed.entry_id])

    async def wait(self, timeout_s: float) -> None:
        """Until a job is added (or ``timeout_s``); an idle worker's only wait, so a job never waits for a poll."""
        await self._redis.blpop([self._keys.jobs_wake], timeout=timeout_s)

    async def sizes(self) -> dict[str, int]:
        """Entries in the job streams, those not claimed yet (waiting) and claimed (pending), and buckets."""
        buckets = await self._redis.zrange(self._keys.jobs_active, 0, -1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for b in buckets:
                pipe.xlen(b)
                pipe.xinfo_groups(b)
            replies = await pipe.execute(raise_on_error=False)
        sizes = {"length": 0, "waiting": 0, "pending": 0, "buckets": len(buckets)}
        for length, groups in zip(replies[::2], replies[1::2], strict=True):
            if isinstance(length, Exception) or isinstance(groups, Exception):
                continue  # deleted meanwhile
            sizes["length"] += int(length)
            for g in groups:
                sizes["waiting"] += int(g.get("lag") or 0)
                sizes["pending"] += int(g.get("pending") or 0)
        return sizes


def _claimed(got: list) -> Claimed:
    stream, entry_id, fields = got
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    name = stream.decode() if isinstance(stream, bytes) else stream
    return Claimed(name, entry_id, loads(values[b"job"]))
