"""The speech worker against a real redis-server (started on a free port) with a fake engine: idempotent
announcing, dropped cancelled jobs, first sentences before later ones, and no ack before the clip is stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from avatarchat.distributed.keys import GROUP, Keys, dumps
from avatarchat.distributed.worker import SpeechWorker
from tests.fakes import FakeEngine
from tests.redis_cluster import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


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


def new_worker(redis: Redis, engine: FakeEngine) -> SpeechWorker:
    return SpeechWorker(redis, Keys(), engine, visibility_s=5, clip_ttl_s=60, clips_in_redis=False, name="w1")


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
    total = 0
    for stream in keys.job_streams:
        if await redis.exists(stream) and await redis.xinfo_groups(stream):  # no group before a worker ran
            total += (await redis.xpending(stream, GROUP))["pending"]
    return total


async def test_a_job_tried_twice_is_announced_once_and_both_tries_are_acknowledged(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    worker = new_worker(redis, engine)

    async def work() -> None:
        for _ in range(2):  # the same job id twice: a retry after its first try was announced
            await redis.xadd(keys.jobs, {"job": dumps(job(1, "Hello.", job_id="same"))})
        await run_until(worker, lambda: _settled(redis, keys, 2))

    events = await events_of(redis, keys, 1, work)
    assert [e["type"] for e in events] == ["clip_ready"] and events[0]["job"] == "same"
    assert await pending(redis, keys) == 0


async def _settled(redis: Redis, keys: Keys, n: int) -> bool:
    read = sum((g["entries-read"] or 0) for g in await redis.xinfo_groups(keys.jobs)) if await redis.exists(
        keys.jobs) else 0
    return read >= n and await pending(redis, keys) == 0


async def test_a_cancelled_replys_queued_job_is_dropped_unrendered(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    await redis.set(keys.cancel("r1"), b"1")
    await redis.xadd(keys.jobs, {"job": dumps(job(2, "Never said."))})
    await run_until(new_worker(redis, engine), lambda: _settled(redis, keys, 1))
    assert engine.rendered == [] and not await redis.exists(keys.done("job2Nev"))


async def test_a_first_sentence_is_taken_before_later_ones_queued_earlier(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()
    for seq in (1, 2):
        await redis.xadd(keys.jobs, {"job": dumps(job(seq, f"Later {seq}.", reply="old"))})
    await redis.xadd(keys.jobs_first, {"job": dumps(job(0, "First!", reply="new"))})
    await run_until(new_worker(redis, engine), lambda: _all_rendered(engine, 3))
    assert engine.rendered == ["First!", "Later 1.", "Later 2."]


async def _all_rendered(engine: FakeEngine, n: int) -> bool:
    return len(engine.rendered) >= n


async def test_no_job_is_acknowledged_when_its_clip_cannot_be_stored(redis: Redis) -> None:
    keys, engine = Keys(), FakeEngine()  # the fake's clip file does not exist: storing it in Redis fails
    worker = SpeechWorker(redis, keys, engine, visibility_s=5, clip_ttl_s=60, clips_in_redis=True, name="w1")
    await redis.xadd(keys.jobs, {"job": dumps(job(1, "Lost?"))})
    await run_until(worker, lambda: _all_rendered(engine, 1))
    await asyncio.sleep(0.1)
    assert await pending(redis, keys) == 1  # still claimed: another worker reclaims it after the timeout
    assert not await redis.exists(keys.done("job1Los"))
