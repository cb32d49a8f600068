"""Admission control over the whole cluster (Redis mode): how long a new sentence would wait for its clip.

Embedded, the server counts its own queued sentences and knows its render threads. With several web nodes
each node's own count is a fraction of the truth, and the render threads are the workers', so here both come
from Redis: the backlog (``<p>:backlog``, every sentence queued by any node and not yet announced, scored by
when it times out, so the entries of a node that died stop counting) and the workers' heartbeats (their
threads, and the seconds one sentence took them on average).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from avatarchat.distributed.keys import Keys

log = logging.getLogger(__name__)
WORKERS_FRESH_S = 2.0  # the heartbeats are read (SCAN) at most this often per node


class ClusterAdmission:
    def __init__(self, redis: Redis, keys: Keys, workers: Callable[[], Awaitable[list[dict[str, Any]]]],
                 default_job_s: float = 1.0) -> None:
        """``workers``: the live workers' heartbeats; ``default_job_s``: a sentence's cost until one is measured."""
        self._redis, self._keys, self._workers = redis, keys, workers
        self._default_job_s = default_job_s
        self._seen: tuple[float, list[dict[str, Any]]] = (float("-inf"), [])

    async def jobs_waiting(self) -> int:
        """Sentences queued anywhere in the cluster and not yet announced (the timed-out ones dropped)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self._keys.backlog, "-inf", time.time())
        pipe.zcard(self._keys.backlog)
        _, count = await pipe.execute()
        return int(count)

    async def backlog(self) -> tuple[int, float]:
        """Sentences waiting and the seconds a new one would wait: the work ahead of it spread over every
        live worker's threads. Redis unreachable: (0, 0.0), so a message is spoken rather than refused on a
        guess (its sentences then fail visibly if no worker takes them)."""
        try:
            waiting = await self.jobs_waiting()
            workers = await self._live_workers()
        except (RedisError, OSError) as exc:
            log.warning("admission control: Redis unreachable (%s); not limiting", exc)
            return 0, 0.0
        threads = sum(max(1, int(w.get("threads", 1))) for w in workers)
        done = sum(int(w.get("clips", 0)) + int(w.get("failed", 0)) for w in workers)
        busy = sum(float(w.get("busy_s", 0.0)) for w in workers)
        job_s = busy / done if done else self._default_job_s
        return waiting, waiting * job_s / max(1, threads)

    async def _live_workers(self) -> list[dict[str, Any]]:
        at, workers = self._seen
        if time.monotonic() - at > WORKERS_FRESH_S:
            workers = await self._workers()
            self._seen = (time.monotonic(), workers)
        return workers
