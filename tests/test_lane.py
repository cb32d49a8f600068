"""The speech lane with a fake engine: ordering, failures, queue-full, barge-in and playback, in milliseconds
(no server, no Piper, no mediapipe)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from avatarchat.errors import QueueFull
from avatarchat.pipeline.lane import SpeechLane
from avatarchat.pipeline.reply import PLAYBACK_GRACE_S, Reply
from avatarchat.pipeline.session import INTERRUPTED, Session
from tests.fakes import Events, FakeEngine, speak


@pytest.fixture
async def lane_of() -> AsyncIterator:
    lanes: list[SpeechLane] = []

    def make(engine: FakeEngine, queue_size: int = 8) -> tuple[SpeechLane, Events]:
        events = Events()
        lane = SpeechLane("s-test", engine, events, queue_size)
        lane.start()
        lanes.append(lane)
        return lane, events

    yield make
    for lane in lanes:
        await lane.aclose()


async def test_clips_are_announced_in_order_then_speech_done(lane_of) -> None:
    lane, events = lane_of(FakeEngine())
    reply = speak(lane, ["One.", "Two.", "Three."])
    done = await events.wait_for("speech_done", reply.id)
    assert [e["seq"] for e in events.items if e["type"] == "clip_ready"] == [0, 1, 2]
    assert events.types(reply.id)[-1] == "speech_done"
    assert done["sentences"] == 3 and done["clips"] == 3


async def test_a_failed_sentence_is_an_error_with_its_seq_and_the_rest_still_speaks(lane_of) -> None:
    lane, events = lane_of(FakeEngine(fail_voice={"Two."}))
    reply = speak(lane, ["One.", "Two.", "Three."])
    done = await events.wait_for("speech_done", reply.id)
    [error] = [e for e in events.items if e["type"] == "error"]
    assert error["seq"] == 1 and error["reply"] == reply.id and error["code"] == "backend_error"
    assert "secret detail" not in error["message"]  # the upstream detail goes to the log only
    assert [e["seq"] for e in events.items if e["type"] == "clip_ready"] == [0, 2]
    assert done["sentences"] == 3 and done["clips"] == 2


async def test_a_renderer_bug_fails_its_sentence_and_the_lane_lives_on(lane_of) -> None:
    lane, events = lane_of(FakeEngine(crash_render={"Boom."}))
    first = speak(lane, ["Boom.", "Fine."])
    await events.wait_for("speech_done", first.id)
    second = speak(lane, ["Still here."])
    await events.wait_for("speech_done", second.id)
    assert [e["seq"] for e in events.items if e["type"] == "error"] == [0]
    assert events.types(second.id).count("clip_ready") == 1


async def test_a_full_lane_refuses_a_sentence_and_marks_its_seq_failed(lane_of) -> None:
    engine = FakeEngine()
    engine.voice_gate.clear()  # nothing leaves the queue
    lane, events = lane_of(engine, queue_size=2)
    reply = Reply()
    lane.begin(reply)
    lane.submit(reply, "A.", "v")
    await asyncio.sleep(0.01)  # the TTS stage takes A (and waits): the queue is empty again
    lane.submit(reply, "B.", "v")
    lane.submit(reply, "C.", "v")
    with pytest.raises(QueueFull):
        lane.submit(reply, "D.", "v")
    assert reply.state()["failed"] == [3] and lane.waiting == 2


async def test_barge_in_while_rendering_stops_the_render_and_no_old_clip_follows(lane_of) -> None:
    engine = FakeEngine()
    engine.gate.clear()  # the render of the first sentence hangs until cancelled
    lane, events = lane_of(engine)
    old = speak(lane, ["One.", "Two.", "Three."])
    await asyncio.sleep(0.02)
    assert lane.cancel_all() == [old]
    engine.gate.set()
    new = speak(lane, ["New."])
    await events.wait_for("speech_done", new.id)
    assert "speech_cancelled" in events.types(old.id)
    assert "clip_ready" not in events.types(old.id) and "speech_done" not in events.types(old.id)
    assert engine.rendered == ["New."]
    assert lane.waiting == 0


async def test_barge_in_cancels_the_tts_call_in_flight(lane_of) -> None:
    engine = FakeEngine()
    engine.voice_gate.clear()  # synthesis of the first sentence never finishes by itself
    lane, events = lane_of(engine)
    speak(lane, ["A long sentence."])
    await asyncio.sleep(0.02)
    lane.cancel_all()
    await asyncio.sleep(0.02)
    assert engine.voicing_cancelled == 1  # an espeak-ng child would have been killed here


async def test_a_rendered_reply_speaks_until_the_page_played_it_out(lane_of) -> None:
    lane, events = lane_of(FakeEngine())
    reply = speak(lane, ["One.", "Two."])
    await events.wait_for("speech_done", reply.id)
    assert lane.speaking() == [reply]  # rendered, but not yet heard
    lane.report(reply.id, 0, ended=True)
    assert lane.speaking() == [reply]
    lane.report(reply.id, 1, ended=False)
    assert reply.heard_text() == "One. Two."
    lane.report(reply.id, 1, ended=True)
    assert lane.speaking() == [] and lane.cancel_all() == []


async def test_a_silent_page_counts_a_reply_played_after_its_length(lane_of) -> None:
    lane, events = lane_of(FakeEngine())
    reply = speak(lane, ["One.", "Two."])
    await events.wait_for("speech_done", reply.id)
    total = sum(c["duration_s"] for c in reply.state()["clips"])
    assert reply.speaking(now=time.monotonic())
    assert not reply.speaking(now=time.monotonic() + total + PLAYBACK_GRACE_S + 0.1)


async def test_reports_of_unknown_replies_or_seqs_are_ignored(lane_of) -> None:
    lane, events = lane_of(FakeEngine())
    reply = speak(lane, ["One."])
    await events.wait_for("speech_done", reply.id)
    lane.report("not-a-reply", 0, ended=True)
    lane.report(reply.id, 7, ended=True)
    assert lane.speaking() == [reply]


async def test_state_lists_what_a_reconnecting_page_needs(lane_of) -> None:
    lane, events = lane_of(FakeEngine(fail_voice={"Bad."}))
    reply = speak(lane, ["One.", "Bad.", "Three."])
    await events.wait_for("speech_done", reply.id)
    lane.report(reply.id, 0, ended=False)
    [state] = lane.state()
    assert state["reply"] == reply.id and state["failed"] == [1] and state["played"] == [0]
    assert [c["seq"] for c in state["clips"]] == [0, 2] and state["done"] and state["sentences"] == 3


async def test_interrupting_stores_what_was_heard_right_after_its_question() -> None:
    engine = FakeEngine()
    events = Events()
    session = Session("s-hist", queue_size=8, history_turns=10)
    session.lane = SpeechLane(session.id, engine, events, 8)
    session.lane.start()
    try:
        first, _ = session.begin_reply("Tell me a story.", barge_in=True)
        for t in ["Once upon a time.", "There was a fox.", "The end."]:
            session.lane.submit(first, t, "v")
        session.lane.end(first)
        session.answer(first, "Once upon a time. There was a fox. The end.")
        await events.wait_for("speech_done", first.id)
        session.lane.report(first.id, 0, ended=True)
        session.lane.report(first.id, 1, ended=False)
        second, cancelled = session.begin_reply("Stop, please.", barge_in=True)
        assert cancelled == [first]
        assert [(m.role, m.content) for m in session.history] == [
            ("user", "Tell me a story."), ("assistant", "Once upon a time. There was a fox."),
            ("user", "Stop, please.")]
        third, cancelled = session.begin_reply("Hello?", barge_in=True)  # second: nothing of it was heard
        assert cancelled == [second]
        assert [m.content for m in session.history][-3:] == ["Stop, please.", INTERRUPTED, "Hello?"]
    finally:
        await session.lane.aclose()


def _late_clips(engine: FakeEngine) -> tuple[float, float]:
    """(how many clips came late, their lateness in seconds, summed) from the engine's metrics."""
    registry = engine.metrics.registry
    return (registry.get_sample_value("avatarchat_clip_late_seconds_count") or 0.0,
            registry.get_sample_value("avatarchat_clip_late_seconds_sum") or 0.0)


async def test_a_clip_ready_after_the_clips_before_it_have_played_is_counted_late(lane_of) -> None:
    first, second = "One two three.", "Four five six seven eight."  # 0.14 s of speech, then 0.26 s
    engine = FakeEngine(slow_render={second: 0.4})
    lane, events = lane_of(engine)
    reply = speak(lane, [first, second])
    await events.wait_for("speech_done", reply.id)
    count, seconds = _late_clips(engine)
    # Announced ~0.4 s after the first, which a page playing from its announce finished after 0.14 s.
    assert count == 1 and 0.2 < seconds < 1.0, (count, seconds)

    in_time = FakeEngine()
    lane, events = lane_of(in_time)
    reply = speak(lane, ["One two three four five six seven eight nine ten.", first, second])  # 0.5 s first
    await events.wait_for("speech_done", reply.id)
    assert _late_clips(in_time) == (0.0, 0.0)


def test_clips_of_a_held_reply_are_never_late_and_count_from_its_release() -> None:
    reply = Reply()
    reply.hold()
    assert reply.announce(0, {}, 0.5) == 0.0
    time.sleep(0.2)
    assert reply.announce(1, {}, 0.5) == 0.0  # nothing of a held reply has reached the page
    reply.release()  # both reach the page now: 1 s of speech in hand
    time.sleep(0.1)
    assert reply.announce(2, {}, 0.1) == 0.0
    time.sleep(1.2)  # past the 1.1 s the page had from the release
    assert 0.1 < reply.announce(3, {}, 0.2) < 0.8
