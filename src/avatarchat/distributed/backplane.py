"""A web node's view of the shared Redis: session state, admission control, clips, and the health and
metrics of the cluster.

Everything a web node reads from Redis outside a session's lane goes through here, so the routes stay one
line longer than in the embedded mode and know no key names.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from avatarchat.distributed.admission import ClusterAdmission
from avatarchat.distributed.jobqueue import JobQueue
from avatarchat.distributed.keys import Keys, loads
from avatarchat.distributed.outage import reachable
from avatarchat.distributed.session_store import RedisSessionStore
from avatarchat.distributed.subscriber import Subscriber
from avatarchat.pipeline.reply import new_id


class Backplane:
    def __init__(self, redis: Redis, keys: Keys, session_ttl_s: float, history_turns: int = 20) -> None:
        self.redis = redis
        self.keys = keys
        self.sessions = RedisSessionStore(redis, keys, session_ttl_s, history_turns)
        self.admission = ClusterAdmission(redis, keys, self.workers)
        self.jobs = JobQueue(redis, keys)
        # One pub/sub connection for every session this node holds (not one each: the pool has 100).
        self.subscriber = Subscriber(redis, keys.node(new_id()))

    @classmethod
    def connect(cls, url: str, session_ttl_s: float, history_turns: int = 20,
                prefix: str = "avatarchat") -> Backplane:
        """A client that reconnects by itself: a command on a connection Redis closed (it restarted) is
        retried on a new one, three times within about a second."""
        redis = Redis.from_url(url, socket_connect_timeout=2, health_check_interval=10,
                               retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                               retry_on_error=[RedisConnectionError, RedisTimeoutError])
        return cls(redis, Keys(prefix), session_ttl_s, history_turns)

    # -- clips ---------------------------------------------------------------------------------------------
    async def clip(self, clip_id: str) -> bytes | None:
        """A clip's bytes; stored in one SET, so what is here is always a whole clip."""
        return await reachable(self.redis.get(self.keys.clip(clip_id)))

    # -- health and metrics ----------------------------------------------------------------------------------
    async def workers(self) -> list[dict[str, Any]]:
        names = [k async for k in self.redis.scan_iter(match=self.keys.worker("*"), count=100)]
        values = await self.redis.mget(names) if names else []
        return [loads(v) for v in values if v is not None]

    async def health(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            await self.redis.ping()
            workers = await self.workers()
        except (RedisError, OSError) as exc:
            return {"redis": "unreachable", "error": str(exc), "workers": []}
        return {"redis": "ok", "redis_ping_ms": round((time.perf_counter() - t0) * 1000, 2),
                "workers": [w["name"] for w in workers]}

    async def exposition(self) -> str:
        """Prometheus text for the job streams (every deadline bucket) and the workers (read from Redis at
        scrape time)."""
        try:
            sizes = await self.jobs.sizes()
            reclaimed = int(await self.redis.get(self.keys.reclaimed) or 0)
            backlog = await self.admission.jobs_waiting()
            workers = await self.workers()
        except (RedisError, OSError):
            return "# TYPE avatarchat_redis_up gauge\navatarchat_redis_up 0\n"
        lines = ["# TYPE avatarchat_redis_up gauge", "avatarchat_redis_up 1",
                 "# TYPE avatarchat_jobs_stream_length gauge", f"avatarchat_jobs_stream_length {sizes['length']}",
                 "# TYPE avatarchat_jobs_waiting gauge", f"avatarchat_jobs_waiting {sizes['waiting']}",
                 "# TYPE avatarchat_jobs_pending gauge", f"avatarchat_jobs_pending {sizes['pending']}",
                 "# TYPE avatarchat_jobs_buckets gauge", f"avatarchat_jobs_buckets {sizes['buckets']}",
                 "# TYPE avatarchat_jobs_reclaimed_total counter", f"avatarchat_jobs_reclaimed_total {reclaimed}",
                 "# TYPE avatarchat_speech_backlog gauge", f"avatarchat_speech_backlog {backlog}",
                 "# TYPE avatarchat_workers gauge", f"avatarchat_workers {len(workers)}",
                 "# TYPE avatarchat_worker_clips_total counter",
                 "# TYPE avatarchat_worker_clips_per_second gauge"]
        for w in workers:
            up = max(1e-9, time.time() - w["started_at"])
            lines.append(f'avatarchat_worker_clips_total{{worker="{w["name"]}"}} {w["clips"]}')
            lines.append(f'avatarchat_worker_clips_per_second{{worker="{w["name"]}"}} {w["clips"] / up:.4f}')
        return "\n".join(lines) + "\n"

    async def aclose(self) -> None:
        await self.subscriber.aclose()
        await self.redis.aclose()
