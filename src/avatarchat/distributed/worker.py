"""``avatarchat worker``: claims speech jobs from Redis, earliest deadline first, voices, renders and stores
each clip.

Jobs come from ``JobQueue`` (deadline-bucketed streams, see ``distributed/jobqueue.py``). A job is
acknowledged only after its clip is stored and announced (or its failure is), so a worker killed at any
point loses nothing: its claimed job stays pending and another worker takes it over with ``XAUTOCLAIM`` once
it has not been touched for ``visibility_s`` (a live worker touches its job while working on it).
Announcing goes through ``SET NX`` on the job id, so a retried job is announced once. A barge-in on any web
node reaches the render running here through the cancel channel, between frames.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from avatarchat.distributed.event_stream import WORKER_TTL_S, EventRecorder
from avatarchat.distributed.jobqueue import Claimed, JobQueue
from avatarchat.distributed.keys import Keys, dumps
from avatarchat.errors import Cancelled
from avatarchat.events import ClipReady
from avatarchat.pipeline.contract import SpeechEngine
from avatarchat.pipeline.failures import as_failure, error_event
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.reply import Reply

log = logging.getLogger(__name__)
RETRY_S = 1.0
HEARTBEAT_S = 1.0  # the worker's stats (admission control, /healthz, metrics), kept 5 beats
ALIVE_EVERY_S = 0.25  # its liveness key, kept ALIVE_TTL_MS: a worker silent that long is dead and its claimed
ALIVE_TTL_MS = 1500  # jobs are taken over at the next orphan check, so within ~2 s of a kill -9
ORPHAN_EVERY_S = 0.5


@dataclass
class WorkerStats:
    name: str
    started_at: float = field(default_factory=time.time)
    clips: int = 0
    failed: int = 0
    cancelled: int = 0
    reclaimed: int = 0
    renders_stopped: int = 0  # barge-ins that stopped a render running here
    worst_stop_ms: float = 0.0  # the slowest of those stops, from the cancel to the render having stopped
    busy_s: float = 0.0
    running: int = 0
    threads: int = 1  # jobs it runs at once (admission control adds them up over the live workers)


class SpeechWorker:
    def __init__(self, redis: Redis, keys: Keys, engine: SpeechEngine, *, visibility_s: float, clip_ttl_s: float,
                 clips_in_redis: bool, loops: int = 1, name: str | None = None,
                 job_timeout_s: float | None = None) -> None:
        """``job_timeout_s``: a job queued longer ago than this was already given up by its web node (an
        ``error`` event ``no_worker``), so it is dropped unrendered."""
        self._redis, self._keys, self._engine = redis, keys, engine
        self._job_timeout_s = job_timeout_s
        self._visibility_s, self._ttl_s = visibility_s, int(max(1, clip_ttl_s))
        self._clips_in_redis, self._loops = clips_in_redis, loops
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stats = WorkerStats(self.name, threads=loops)
        self._events = EventRecorder(redis, keys, WORKER_TTL_S)  # TTLs are only ever extended
        self._running: dict[str, Reply] = {}  # job id -> the stand-in whose stop event the render watches
        self._queue = JobQueue(redis, keys)
        # How often a worker looks for a dead worker's jobs; an idle worker waits for new jobs at most this long.
        self._reclaim_every_s = max(0.05, min(1.0, visibility_s / 4))
        self._next_reclaim = 0.0
        self._next_orphan_check = 0.0
        self._reclaimed = Counter("avatarchat_worker_reclaimed", "Jobs this worker took over from a dead one",
                                  registry=engine.metrics.registry)

    async def run(self) -> None:
        """Runs until cancelled; a Redis outage is logged once a second and waited out, never fatal."""
        await self._beat()  # alive before claiming: nobody takes a job of a worker it has not heard of yet
        loops = [self._supervised(self._claim_loop, f"claim-{i}") for i in range(self._loops)]
        await asyncio.gather(*loops, self._supervised(self._cancel_listener, "cancel"),
                             self._supervised(self._heartbeat, "heartbeat"))

    async def _supervised(self, loop, what: str) -> None:
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("worker %s: Redis unreachable in %s (%s); retrying in %.0f s", self.name, what, exc,
                            RETRY_S)
                await asyncio.sleep(RETRY_S)

    # -- claiming ------------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while True:
            claimed, wait_ms = await self._next()
            await self._handle(claimed, wait_ms)

    async def _next(self) -> tuple[Claimed, float]:
        """A dead worker's job first (looked for every ``_reclaim_every_s``), then the unclaimed job due
        soonest; with none, wait until one is added. Also returns how long the job waited for this worker
        while it was idle (the queue's transport time, in ms)."""
        asked = time.time()
        while True:
            if time.monotonic() >= self._next_orphan_check:
                self._next_orphan_check = time.monotonic() + ORPHAN_EVERY_S
                got = await self._queue.orphaned(self.name, self._alive)
                if got is not None:
                    await self._took_over(got, "whose heartbeat stopped")
                    return got, 0.0
            if time.monotonic() >= self._next_reclaim:
                self._next_reclaim = time.monotonic() + self._reclaim_every_s
                got = await self._queue.reclaim(self.name, int(self._visibility_s * 1000))
                if got is not None:
                    await self._took_over(got, "that stopped touching it")
                    return got, 0.0
            got = await self._queue.claim(self.name)
            if got is not None:
                return got, max(0.0, (time.time() - max(asked, got.job["queued_at"])) * 1000)
            await self._queue.wait(min(self._reclaim_every_s, ORPHAN_EVERY_S))

    async def _took_over(self, got: Claimed, why: str) -> None:
        self.stats.reclaimed += 1
        self._reclaimed.inc()
        await self._redis.incr(self._keys.reclaimed)
        log.info("worker %s: took over job %s of a worker %s", self.name, got.entry_id, why)

    async def _alive(self, worker: str) -> bool:
        return bool(await self._redis.exists(self._keys.worker_alive(worker)))

    async def _keep_claimed(self, claimed: Claimed) -> None:
        """Touch the job while working on it, so nobody reclaims it from a live worker."""
        while True:
            await asyncio.sleep(self._visibility_s / 3)
            try:
                await self._queue.touch(claimed, self.name)
            except RedisError:
                pass

    # -- one job ---------------------------------------------------------------------------------------------
    async def _handle(self, claimed: Claimed, wait_ms: float) -> None:
        raw = claimed.job
        job = SpeechJob(id=raw["id"], reply=raw["reply"], seq=raw["seq"], text=raw["text"], voice=raw["voice"],
                        avatar=raw.get("avatar") or None,  # a gallery's, or an upload found in Redis through
                        session=raw["session"])  # its session (avatars/library.py)
        stand_in = Reply(reply_id=job.reply)
        self._running[job.id] = stand_in
        toucher = asyncio.create_task(self._keep_claimed(claimed))
        t0 = time.perf_counter()
        self.stats.running += 1
        try:
            late = self._job_timeout_s is not None and time.time() - raw["queued_at"] > self._job_timeout_s
            if late or await self._redis.exists(self._keys.cancel(job.reply), self._keys.done(job.id)):
                # barge-in dropped it, a retry of a job already announced, or one its node gave up on
                self.stats.cancelled += 1
            else:
                await self._work(raw["session"], job, stand_in, wait_ms)
            await self._queue.ack(claimed)
        finally:
            toucher.cancel()
            self._running.pop(job.id, None)
            self.stats.running -= 1
            self.stats.busy_s += time.perf_counter() - t0

    async def _work(self, session: str, job: SpeechJob, stand_in: Reply, wait_ms: float) -> None:
        t0 = time.perf_counter()
        rendering = False
        try:
            speech = await self._engine.voice(job)
            tts_ms = (time.perf_counter() - t0) * 1000
            if stand_in.cancelled:
                raise Cancelled("cancelled before rendering")
            rendering = True
            clip = await self._engine.render(job, speech, stand_in)
        except Cancelled:
            self.stats.cancelled += 1
            if rendering and stand_in.cancelled_at is not None:  # a running render, stopped between frames
                stop_s = time.perf_counter() - stand_in.cancelled_at
                self._engine.metrics.cancel_stop.observe(stop_s)
                self.stats.renders_stopped += 1
                self.stats.worst_stop_ms = max(self.stats.worst_stop_ms, round(stop_s * 1000, 1))
            return
        except Exception as exc:  # noqa: BLE001 - one bad sentence must not stop the worker
            await self._failed(session, job, exc)
            return
        t1 = time.perf_counter()
        try:
            if self._clips_in_redis:
                data = await asyncio.to_thread(clip.path.read_bytes)
                await self._redis.set(self._keys.clip(job.id), data, ex=self._ttl_s)
        finally:
            if self._clips_in_redis:
                clip.path.unlink(missing_ok=True)
        store_ms = (time.perf_counter() - t1) * 1000
        m = self._engine.metrics
        m.render.observe(clip.render_s)
        m.encode.observe(clip.encode_s)
        event = ClipReady(session=session, reply=job.reply, job=job.id, seq=job.seq, url=clip.url, text=job.text,
                          duration_s=round(clip.duration_s, 3), voice=job.voice,
                          timings_ms={"tts": round(tts_ms, 1), "render": round(clip.render_s * 1000, 1),
                                      "encode": round(clip.encode_s * 1000, 1),
                                      "claim_wait_ms": round(wait_ms, 2), "store_ms": round(store_ms, 2),
                                      "published_at": time.time() * 1000})
        if await self._announce(job, event.wire()):
            m.clips.inc()
            self.stats.clips += 1

    async def _failed(self, session: str, job: SpeechJob, exc: BaseException) -> None:
        failure = as_failure(exc, "Rendering the clip failed.", f"worker {self.name}: job {job.id}")
        self.stats.failed += 1
        event = error_event(failure, session=session, reply=job.reply, job=job, metrics=self._engine.metrics,
                            secrets=self._engine.secrets,
                            where=f"worker {self.name}: sentence {job.seq + 1} of reply {job.reply[:8]} failed")
        await self._announce(job, event.wire())

    async def _announce(self, job: SpeechJob, event: dict[str, Any]) -> bool:
        """Publish once per job id, however many times the job is tried."""
        if not await self._redis.set(self._keys.done(job.id), b"1", nx=True, ex=self._ttl_s):
            return False
        await self._events.record(event)  # the session's stream, and its nodes at once
        return True

    # -- cancel and heartbeat ----------------------------------------------------------------------------
    async def _cancel_listener(self) -> None:
        async with self._redis.pubsub() as sub:
            await sub.subscribe(self._keys.cancel_channel)
            async for message in sub.listen():
                if message.get("type") != "message":
                    continue
                reply = message["data"].decode()
                for stand_in in list(self._running.values()):
                    if stand_in.id == reply:
                        stand_in.cancel()  # the render checks this between frames

    async def _beat(self) -> None:
        await self._redis.set(self._keys.worker_alive(self.name), b"1", px=ALIVE_TTL_MS)
        await self._redis.set(self._keys.worker(self.name), dumps(asdict(self.stats)),
                              ex=max(3, int(HEARTBEAT_S * 5)))

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await self._redis.set(self._keys.worker_alive(self.name), b"1", px=ALIVE_TTL_MS)
            if beats % round(HEARTBEAT_S / ALIVE_EVERY_S) == 0:
                await self._redis.set(self._keys.worker(self.name), dumps(asdict(self.stats)),
                                      ex=max(3, int(HEARTBEAT_S * 5)))
            beats += 1
            await asyncio.sleep(ALIVE_EVERY_S)
