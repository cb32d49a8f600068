"""Earliest deadline first: the shared scheduler alone, then lanes sharing it with a fake engine."""

from __future__ import annotations

import asyncio

from avatarchat.pipeline.lane import SpeechLane
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.schedule import DeadlineScheduler
from tests.fakes import Events, FakeEngine, speak


def two_lanes(engine: FakeEngine, scheduler: DeadlineScheduler,
              start_buffer_s: float = 0.0) -> list[tuple[SpeechLane, Events]]:
    """Sessions A and B, started, sharing ``engine`` and one scheduler."""
    lanes = []
    for name in ("s-a", "s-b"):
        events = Events()
        lane = SpeechLane(name, engine, events, 8, scheduler, start_buffer_s=start_buffer_s)
        lane.start()
        lanes.append((lane, events))
    return lanes


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
    (a, ea), (b, eb) = two_lanes(engine, scheduler)
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


async def test_a_holder_passes_its_slot_on_only_when_no_waiter_is_due_earlier() -> None:
    scheduler = DeadlineScheduler(1)
    lease = await scheduler.acquire(5.0)
    assert scheduler.may_pass_on(5.0)  # nobody waits
    waiter = asyncio.create_task(scheduler.acquire(10.0))
    await asyncio.sleep(0)
    assert scheduler.may_pass_on(5.0) and not scheduler.may_pass_on(11.0)
    lease.release()
    lease.release()  # a second release of the same lease frees nothing more
    (await waiter).release()
    assert scheduler.running == 0 and scheduler.waiting == 0


async def test_a_voiced_first_sentence_is_rendered_before_another_sessions_later_tts() -> None:
    """Its TTS hands the slot straight to its render: freed, the slot went to the waiting TTS of the session
    that asked a moment later, so here both were voiced before either was rendered."""
    engine = FakeEngine()
    engine.voice_gate.clear()  # A's TTS holds the only slot while B's TTS queues behind it
    scheduler = DeadlineScheduler(1)
    (a, ea), (b, eb) = two_lanes(engine, scheduler)
    try:
        first = speak(a, ["A first."])
        await asyncio.sleep(0.01)
        second = speak(b, ["B first."])  # due a moment after A's sentence
        await asyncio.sleep(0.01)
        assert engine.started == ["voice A first."] and scheduler.waiting == 1
        engine.voice_gate.set()
        await ea.wait_for("speech_done", first.id)
        await eb.wait_for("speech_done", second.id)
        assert engine.started == ["voice A first.", "render A first.", "voice B first.", "render B first."]
        assert scheduler.running == 0
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_barge_in_frees_a_slot_passed_on_to_a_render_that_never_ran() -> None:
    engine = FakeEngine()
    scheduler = DeadlineScheduler(1)
    events = Events()
    lane = SpeechLane("s-a", engine, events, 8, scheduler)
    lane.start()
    try:
        reply = speak(lane, ["One.", "Two."])
        while not engine.started:  # One's TTS is running; its slot will be passed to its render
            await asyncio.sleep(0)
        lane.cancel_all()
        await asyncio.sleep(0.02)
        assert scheduler.running == 0 and reply.cancelled
        after = speak(lane, ["Three."])
        await events.wait_for("speech_done", after.id)
        assert engine.rendered == ["Three."]
    finally:
        await lane.aclose()
    assert scheduler.running == 0


async def test_a_tts_call_is_alone_only_while_nothing_else_holds_or_wants_a_slot() -> None:
    """``alone`` lets a TTS spread over every core (a reply's first chunk on an idle server). It must be False
    as soon as any other work runs or waits: two sessions' TTS calls, or a TTS beside a render."""
    engine = FakeEngine()
    engine.gate.clear()  # renders wait: A's first sentence holds a slot while its second is voiced
    scheduler = DeadlineScheduler(2)
    (a, ea), (b, eb) = two_lanes(engine, scheduler)
    try:
        first = speak(a, ["A one.", "A two."])
        while len(engine.alone) < 2:  # A one voiced alone; A two voiced beside A one's render
            await asyncio.sleep(0.001)
        assert engine.alone == [True, False], engine.started
        engine.gate.set()
        await ea.wait_for("speech_done", first.id)
        engine.voice_gate.clear()  # B's TTS holds its slot; A's TTS comes beside it
        second = speak(b, ["B one."])
        while len(engine.alone) < 3:
            await asyncio.sleep(0.001)
        third = speak(a, ["A three."])
        await asyncio.sleep(0.02)
        engine.voice_gate.set()
        await eb.wait_for("speech_done", second.id)
        await ea.wait_for("speech_done", third.id)
        assert engine.alone == [True, False, True, False], engine.started
    finally:
        await a.aclose()
        await b.aclose()
    assert scheduler.running == 0


def clips(events: Events, reply: Reply) -> list[dict]:
    return [e for e in events.items if e["type"] == "clip_ready" and e["reply"] == reply.id]


async def first_clip_ready_while_work_waits(engine: FakeEngine, scheduler: DeadlineScheduler, a: SpeechLane,
                                            b: SpeechLane) -> tuple[Reply, Reply]:
    """On a one-slot scheduler, A says two sentences and B one. A one's render is held until A two's and B one's
    TTS wait for the slot, then let through while every TTS hangs: A one is rendered, A two cannot be."""
    engine.gate.clear()
    first = speak(a, ["A one.", "A two."])
    second = speak(b, ["B one."])
    while "render A one." not in engine.started:
        await asyncio.sleep(0.001)
    assert scheduler.waiting == 2
    engine.voice_gate.clear()
    engine.gate.set()
    return first, second


async def test_a_first_clip_waits_for_the_next_one_while_other_work_waits_for_the_cpu() -> None:
    """The start-up buffer: A's first clip is ready while B's TTS and A's second TTS wait for the one slot, so
    it is announced only with its second clip (the page would otherwise stop after A's first words)."""
    engine = FakeEngine()
    scheduler = DeadlineScheduler(1)
    (a, ea), (b, eb) = two_lanes(engine, scheduler, start_buffer_s=10.0)
    try:
        first, second = await first_clip_ready_while_work_waits(engine, scheduler, a, b)
        while "A one." not in engine.rendered:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert clips(ea, first) == []  # rendered, held back while A two is not ready
        engine.voice_gate.set()
        await ea.wait_for("speech_done", first.id)
        await eb.wait_for("speech_done", second.id)
        announced = clips(ea, first)
        assert [c["seq"] for c in announced] == [0, 1]
        assert announced[0]["timings_ms"]["buffered"] > 0 and announced[1]["timings_ms"]["buffered"] == 0
        assert engine.rendered.index("A two.") > engine.rendered.index("B one.")  # B's first words went first
        assert [c["seq"] for c in clips(eb, second)] == [0]  # a one-clip reply is not held past its end
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_held_first_clip_goes_out_when_the_buffer_time_since_the_chat_is_up() -> None:
    engine = FakeEngine()
    scheduler = DeadlineScheduler(1)
    (a, ea), (b, eb) = two_lanes(engine, scheduler, start_buffer_s=0.15)
    try:
        first, second = await first_clip_ready_while_work_waits(engine, scheduler, a, b)  # A two is never ready
        clip = await ea.wait_for("clip_ready", first.id, timeout_s=1.0)
        assert clip["seq"] == 0 and "A two." not in engine.rendered
        assert 100 <= clip["timings_ms"]["since_chat"] <= 600  # held until ~0.15 s after the chat, no longer
        assert clip["timings_ms"]["buffered"] > 0
        engine.voice_gate.set()
        await ea.wait_for("speech_done", first.id)
        await eb.wait_for("speech_done", second.id)
    finally:
        await a.aclose()
        await b.aclose()


async def test_nothing_is_held_when_no_work_waits_and_a_barge_in_drops_a_held_clip() -> None:
    engine = FakeEngine()
    scheduler = DeadlineScheduler(2)
    (a, ea), (b, eb) = two_lanes(engine, scheduler, start_buffer_s=10.0)
    try:
        alone = speak(a, ["Alone one.", "Alone two."])
        await ea.wait_for("speech_done", alone.id)
        assert [c["timings_ms"]["buffered"] for c in clips(ea, alone)] == [0, 0]

        scheduler_one = DeadlineScheduler(1)
        (c, ec), (d, ed) = two_lanes(engine, scheduler_one, start_buffer_s=10.0)
        try:
            held, other = await first_clip_ready_while_work_waits(engine, scheduler_one, c, d)  # stays held
            while "A one." not in engine.rendered:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            assert clips(ec, held) == []
            c.cancel_all()  # the person spoke over it: the held clip is dropped, never announced
            await ec.wait_for("speech_cancelled", held.id)
            engine.voice_gate.set()
            await ed.wait_for("speech_done", other.id)
            await asyncio.sleep(0.02)
            assert clips(ec, held) == []
        finally:
            await c.aclose()
            await d.aclose()
    finally:
        await a.aclose()
        await b.aclose()
