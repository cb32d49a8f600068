"""Earliest deadline first: the shared scheduler alone, then lanes sharing it with a fake engine."""

from __future__ import annotations

import asyncio

from avatarchat.pipeline.lane import SpeechLane
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.schedule import DeadlineScheduler
from tests.fakes import Events, FakeEngine, speak


async def test_a_freed_slot_goes_to_the_earliest_deadline_and_a_cancelled_waiter_is_skipped() -> None:
    scheduler = DeadlineScheduler(1)
    order: list[str] = []

    async def work(name: str, due: float) -> None:
        async with scheduler.slot(due):
            order.append(name)
            await asyncio.sleep(0.01)

    holder = asyncio.create_task(work("first", 0.0))
    await asyncio.sleep(0)
    late, early, gone, middle = (asyncio.create_task(work(n, d)) for n, d in
                                 (("late", 30.0), ("early", 10.0), ("gone", 5.0), ("middle", 20.0)))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(holder, late, early, middle, gone, return_exceptions=True)
    assert order == ["first", "early", "middle", "late"]
    assert scheduler.running == 0 and scheduler.waiting == 0


async def test_a_later_sentence_is_due_when_the_clips_before_it_have_played() -> None:
    reply = Reply()
    for text in ("a" * 28, "b" * 14, "c"):
        reply.add_sentence(text)
    assert reply.due(0) == reply.started_at
    assert abs(reply.due(2) - reply.started_at - 3.0) < 1e-9  # guessed from the texts: 2 s + 1 s
    reply.voiced(0, 0.5)  # voiced: its real length replaces the guess
    assert abs(reply.due(2) - reply.started_at - 1.5) < 1e-9


async def test_a_new_replys_first_sentence_overtakes_another_sessions_later_sentences() -> None:
    engine = FakeEngine()
    engine.gate.clear()  # the first render holds the only CPU slot until the gate opens
    scheduler = DeadlineScheduler(1)
    ea, eb = Events(), Events()
    a = SpeechLane("s-a", engine, ea, 8, scheduler)
    b = SpeechLane("s-b", engine, eb, 8, scheduler)
    a.start()
    b.start()
    try:
        long = ["First sentence of a long answer, which takes a while to say out loud. " * 2,
                "Second sentence of the long answer. " * 3, "Third one, also long enough to matter.", "Fourth."]
        first = speak(a, long)
        await asyncio.sleep(0.05)  # A's first sentence is rendering; its second waits for the slot
        second = speak(b, ["Hello!"])
        await asyncio.sleep(0.02)
        engine.gate.set()
        await ea.wait_for("speech_done", first.id)
        await eb.wait_for("speech_done", second.id)
        # A's second sentence was already waiting for the slot (the hand-off goes to it); every later one
        # is due after the new reply's first sentence, which is due now.
        rendered = engine.rendered
        assert rendered.index("Hello!") < rendered.index(long[2]) < rendered.index(long[3])
        assert [e["seq"] for e in ea.items if e["type"] == "clip_ready"] == [0, 1, 2, 3]
        assert scheduler.running == 0
    finally:
        await a.aclose()
        await b.aclose()
