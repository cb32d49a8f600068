"""A busy server renders later clips from a smaller copy of the avatar, and only when a clip would come late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np

from avatarchat.llm.echo import EchoLLM
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.schedule import DeadlineScheduler
from avatarchat.pipeline.speech import BUSY_HOLD_S, SpeechPipeline
from avatarchat.render.avatar import scaled
from avatarchat.render.landmarks import FaceMesh
from avatarchat.tts import as_router
from tests.helpers import decode_clip


def test_a_scaled_avatar_has_its_landmarks_where_the_face_mesh_finds_them(avatar) -> None:
    small = scaled(avatar, 384)
    assert avatar.size == (512, 384) and small.size == (384, 288)
    assert small.id != avatar.id and small.frames.dtype == np.uint8
    with FaceMesh() as mesh:
        found = mesh.detect_one(small.image)
    error = np.linalg.norm(found[:, :2] - small.landmarks[:, :2], axis=1)
    # The landmarks were moved, not found again: they sit where a face-mesh pass over the small picture puts
    # them (0.3 px median here; the full-size ones, unscaled, are off by 65 px).
    assert np.median(error) < 1.5, np.median(error)
    assert scaled(avatar, 512) is avatar and scaled(avatar, 2048) is avatar


async def _clip_size(pipeline: SpeechPipeline, reply: Reply, seq: int, text: str) -> tuple[tuple[int, int], float]:
    job = SpeechJob(id=f"{reply.id}-{seq}", reply=reply.id, seq=seq, text=text)
    reply.add_sentence(text)
    speech = await pipeline.voice(job)
    clip = await pipeline.render(job, speech, reply)
    frames = decode_clip(clip.path.read_bytes()).frames
    return (frames.shape[2], frames.shape[1]), clip.duration_s


async def _after_first_played(pipeline: SpeechPipeline, reply: Reply, text: str) -> tuple[int, int]:
    """The size of ``reply``'s second clip (``text``), rendered once its short first clip has played out."""
    _, first_s = await _clip_size(pipeline, reply, 0, "Hello.")
    reply.announce(0, {}, first_s)
    await asyncio.sleep(first_s)
    size, _ = await _clip_size(pipeline, reply, 1, text)
    return size


class Contended:
    """A pipeline whose one scheduler slot is taken; ``wait(due)`` queues another session's step for it."""

    def __init__(self, pipeline: SpeechPipeline, scheduler: DeadlineScheduler) -> None:
        self.pipeline, self.scheduler = pipeline, scheduler
        self.waiters: list[asyncio.Task] = []

    async def wait(self, due: float) -> None:
        self.waiters.append(asyncio.create_task(self.scheduler.acquire(due)))
        await asyncio.sleep(0)


@asynccontextmanager
async def contended(tts, renderer, avatar, tmp_path) -> AsyncIterator[Contended]:
    pipeline = SpeechPipeline(EchoLLM(), as_router(tts), renderer, avatar, tmp_path, threads=1, busy_max_side=384)
    pipeline.scheduler = DeadlineScheduler(1)
    holder = await pipeline.scheduler.acquire(0.0)
    state = Contended(pipeline, pipeline.scheduler)
    try:
        yield state
    finally:
        for w in state.waiters:
            w.cancel()
        await asyncio.gather(*state.waiters, return_exceptions=True)
        holder.release()
        await pipeline.aclose()


async def test_later_clips_are_rendered_small_only_while_they_would_come_late(tts, renderer, avatar,
                                                                             tmp_path) -> None:
    async with contended(tts, renderer, avatar, tmp_path) as c:
        pipeline = c.pipeline
        # Alone: the first clip has played out before the next one's render starts, but nothing else waits for
        # the CPU (one session alone never does): full size.
        assert await _after_first_played(pipeline, Reply(), "Late, but alone.") == (512, 384)

        # Another session's step waits for the slot from now on (not late itself).
        await c.wait(time.monotonic() + 60.0)
        assert c.scheduler.waiting == 1
        # On time: the first clip has just started playing; the second is ready long before it ends.
        on_time = Reply()
        size, first_s = await _clip_size(pipeline, on_time, 0, "Hello there, this is the first part.")
        assert size == (512, 384)
        on_time.announce(0, {}, first_s)
        size, _ = await _clip_size(pipeline, on_time, 1, "And more.")
        assert size == (512, 384)
        assert pipeline.metrics.small_clips._value.get() == 0

        # Late: the first clip has played out before the next one's render starts.
        assert await _after_first_played(pipeline, Reply(), "This one comes late.") == (384, 288)
        # ... and for a while after, every clip is small, a first one too, in any reply.
        size, _ = await _clip_size(pipeline, Reply(), 0, "Someone else asks.")
        assert size == (384, 288)
        assert pipeline.metrics.small_clips._value.get() == 2

        await asyncio.sleep(BUSY_HOLD_S)
        size, _ = await _clip_size(pipeline, Reply(), 0, "Calm again.")
        assert size == (512, 384)


async def test_a_clip_of_a_reply_not_yet_playing_is_never_late(tts, renderer, avatar, tmp_path) -> None:
    """A first clip the lane's start-up buffer holds back has not started: the next one cannot be late yet."""
    async with contended(tts, renderer, avatar, tmp_path) as c:
        await c.wait(time.monotonic() + 60.0)  # another session waits
        reply = Reply()
        await _clip_size(c.pipeline, reply, 0, "Hello.")
        await asyncio.sleep(1.5)  # far past what the first clip's text would take to say
        size, _ = await _clip_size(c.pipeline, reply, 1, "Still not playing.")
        assert size == (512, 384)


async def test_a_crowd_of_late_work_at_the_cpu_makes_even_a_first_clip_small(tts, renderer, avatar, tmp_path) -> None:
    """8 sessions asking at once: before any clip plays, the slots are taken and work waits, already late."""
    async with contended(tts, renderer, avatar, tmp_path) as c:
        now = time.monotonic()
        for _ in range(2):
            await c.wait(now + 10.0)
        size, _ = await _clip_size(c.pipeline, Reply(), 0, "Two steps wait, neither of them late.")
        assert size == (512, 384) and c.scheduler.overdue_s(time.monotonic()) == 0.0
        await c.wait(now - 1.0)  # a /chat a second ago, still waiting
        assert c.scheduler.overdue_s(time.monotonic()) >= 1.0
        size, _ = await _clip_size(c.pipeline, Reply(), 0, "Now one of them is a second late.")
        assert size == (384, 288)
