"""The speech worker against a real redis-server (started on a free port) with a fake engine: idempotent
announcing, dropped cancelled jobs, jobs claimed earliest deadline first (by one worker and across workers),
no ack before the clip is stored, a dead worker's job taken over, drained deadline buckets deleted."""

from __future__ import annotations

import asyncio
import json
import time

from redis.asyncio import Redis

from avatarchat.distributed.jobqueue import JobQueue
from avatarchat.distributed.keys import Keys
from avatarchat.distributed.worker import SpeechWorker
from tests.fakes import FakeEngine


def job(seq: int, text: str, job_id: str = "", reply: str = "r1") -> dict:
    return {"id": job_id or f"job{seq}{text[:3]}", "session": "s1", "reply": reply, "seq": seq, "text": text,
            "voice": "fake:voice", "queued_at": 0.0}


async def run_until(worker: SpeechWorker, done, timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def new_worker(redis: Redis, engine: FakeEngine, name: str = "w1", visibility_s: float = 5) -> SpeechWorker:
    return SpeechWorker(redis, Keys(), engine, visibility_s=visibility_s, clip_ttl_s=60, clips_in_redis=False,
                        name=name)


async def add(redis: Redis, jobs: list[dict], due_in_s: list[float] | None = None) -> None:
    """Queue ``jobs`` as a web node does, due ``due_in_s`` seconds from now (all now by default)."""
    queue, now = JobQueue(redis, Keys()), time.time()
    for j, due in zip(jobs, due_in_s or [0.0] * len(jobs), strict=True):
        await queue.add(j, now + due)


async def events_of(redis: Redis, keys: Keys, n: int, work) -> list[dict]:
    """The session's events while ``work`` runs, until ``n`` have arrived."""
    got: list[dict] = []
    async with redis.pubsub() as sub:
        await sub.subscribe(keys.events("s1"))
        await work()
        async with asyncio.timeout(5):
            while len(got) < n:
                m = await sub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if m:
                    got.append(json.loads(m["data"]))
        await asyncio.sleep(0.2)  # anything more would be a duplicate
        while (m := await sub.get_message(ignore_subscribe_messages=True, timeout=0.05)) is not None:
            got.append(json.loads(m["data"]))
    return got


async def pending(redis: Redis, keys: Keys) -> int:
    return (await JobQueue(redis, keys).sizes())["pending"]


async def test_a_job_tried_twice_is_announced_once_and_both_tries_are_acknowledged(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    worker = new_worker(redis, engine)

    async def work() -> None:
        # the same job id twice: a retry after its first try was announced
        await add(redis, [job(1, "Hello.", job_id="same"), job(1, "Hello.", job_id="same")])
        await run_until(worker, lambda: _settled(redis, keys))

    events = await events_of(redis, keys, 1, work)
    assert [e["type"] for e in events] == ["clip_ready"] and events[0]["job"] == "same"
    assert await pending(redis, keys) == 0


async def _settled(redis: Redis, keys: Keys) -> bool:
    """Every job claimed and acknowledged: acknowledged entries are deleted, and so are their drained buckets."""
    return not await redis.exists(keys.jobs_active, keys.jobs_due)


async def test_a_cancelled_replys_queued_job_is_dropped_unrendered(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    await redis.set(keys.cancel("r1"), b"1")
    await add(redis, [job(2, "Never said.")])
    await run_until(new_worker(redis, engine), lambda: _settled(redis, keys))
    assert engine.rendered == [] and not await redis.exists(keys.done("job2Nev"))


async def test_a_job_its_node_already_gave_up_on_is_dropped_unrendered(redis: Redis) -> None:
    """Issue 17 item 9: a sentence that timed out (the page got ``no_worker``) was still rendered later."""
    keys, engine = Keys(), FakeEngine()
    stale, fresh = job(2, "Too late."), job(3, "In time.")
    stale["queued_at"], fresh["queued_at"] = time.time() - 31, time.time()
    await add(redis, [stale, fresh])
    worker = SpeechWorker(redis, keys, engine, visibility_s=5, clip_ttl_s=60, clips_in_redis=False, name="w1",
                          job_timeout_s=30)
    await run_until(worker, lambda: _settled(redis, keys))
    assert engine.rendered == ["In time."]


async def test_jobs_are_taken_in_deadline_order_not_arrival_order(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    await add(redis, [job(2, "Later 2.", reply="old"), job(1, "Later 1.", reply="old"), job(0, "First!", reply="new"),
                      job(3, "Much later.", reply="old")], [6.0, 3.0, 0.0, 9.0])
    await run_until(new_worker(redis, engine), lambda: _settled(redis, keys))
    assert engine.rendered == ["First!", "Later 1.", "Later 2.", "Much later."]
    assert [k async for k in redis.scan_iter(match="avatarchat:jobs:*")] == []  # drained buckets are deleted


async def _all_rendered(engine: FakeEngine, n: int) -> bool:
    return len(engine.rendered) >= n


async def test_no_job_is_acknowledged_when_its_clip_cannot_be_stored(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()  # the fake's clip file does not exist: storing it in Redis fails
    worker = SpeechWorker(redis, keys, engine, visibility_s=5, clip_ttl_s=60, clips_in_redis=True, name="w1")
    await add(redis, [job(1, "Lost?")])
    await run_until(worker, lambda: _all_rendered(engine, 1))
    await asyncio.sleep(0.1)
    assert await pending(redis, keys) == 1  # still claimed: another worker reclaims it after the timeout
    assert not await redis.exists(keys.done("job1Los"))


async def test_while_one_worker_is_busy_another_takes_the_waiting_jobs_in_deadline_order(redis: Redis) -> None:
    busy, free = FakeEngine(), FakeEngine()
    busy.gate.clear()  # w1's render never finishes during the test
    await add(redis, [job(0, "Long render.", reply="a")])
    w1 = asyncio.create_task(new_worker(redis, busy, "w1").run())
    try:
        async with asyncio.timeout(5):
            while (await pending(redis, Keys())) < 1:  # w1 claimed it and is rendering
                await asyncio.sleep(0.01)
        # queued later-deadline first, across three replies; w1 is busy, so they wait for w2
        await add(redis, [job(2, "C third.", reply="c"), job(1, "B second.", reply="b"), job(0, "D first.", reply="d"),
                          job(1, "E fourth.", reply="e")], [4.0, 2.0, 0.5, 5.0])
        await run_until(new_worker(redis, free, "w2"), lambda: _all_rendered(free, 4))
        assert free.rendered == ["D first.", "B second.", "C third.", "E fourth."]
        assert busy.rendered == [] and await pending(redis, Keys()) == 1  # still w1's
    finally:
        w1.cancel()
        await asyncio.gather(w1, return_exceptions=True)


async def test_a_dead_workers_job_is_reclaimed(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    await add(redis, [job(0, "Orphan.", reply="a")], [-1.0])
    assert (await JobQueue(redis, keys).claim("dead")).job["text"] == "Orphan."  # its worker then died
    worker = new_worker(redis, engine, visibility_s=0.3)
    await run_until(worker, lambda: _settled(redis, keys))
    assert engine.rendered == ["Orphan."] and worker.stats.reclaimed == 1


async def test_a_job_whose_workers_heartbeat_stopped_moves_on_at_once_a_live_ones_stays(redis: Redis) -> None:
    """Issue 17 item 9: a worker killed with kill -9 held its job for the whole visibility timeout (~10 s). Now a
    job of a worker with no heartbeat is taken within the next orphan check (0.5 s); a live worker's is not."""
    keys, engine = Keys(), FakeEngine()
    await add(redis, [job(0, "Orphan.", reply="a"), job(1, "Held.", reply="b")], [-1.0, -0.5])
    queue = JobQueue(redis, keys)
    assert (await queue.claim("dead")).job["text"] == "Orphan."
    assert (await queue.claim("alive")).job["text"] == "Held."
    await redis.set(keys.worker_alive("alive"), b"1", px=60_000)  # its heartbeat goes on
    await asyncio.sleep(0.35)  # both untouched past the takeover's minimum idle time
    worker = new_worker(redis, engine, visibility_s=60)
    t0, took = time.monotonic(), []

    async def done() -> bool:  # the orphan rendered, and then a few more orphan checks passed
        if "Orphan." in engine.rendered and not took:
            took.append(time.monotonic() - t0)
        return bool(took) and time.monotonic() - t0 > took[0] + 1.2

    await run_until(worker, done, timeout_s=4)
    assert took[0] < 2.0, took
    assert engine.rendered == ["Orphan."] and worker.stats.reclaimed == 1


async def test_an_idle_worker_takes_a_new_job_at_once(redis: Redis) -> None:
    engine = FakeEngine()
    worker = new_worker(redis, engine, visibility_s=4)  # it would look again after 1 s by itself
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # idle: waiting on the wake list
        t0 = time.perf_counter()
        await add(redis, [job(0, "Wake up.")])
        async with asyncio.timeout(5):
            while not engine.rendered:
                await asyncio.sleep(0.002)
        assert time.perf_counter() - t0 < 0.1  # woken by the job, not by a poll
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
