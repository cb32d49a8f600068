"""A provisional answer against a real session and speech lane with a fake engine, in milliseconds: held
events, history untouched until commit, discard without a trace, and what makes a commit impossible."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from avatarchat.data import Message
from avatarchat.events import ReplyPartial, ReplyText
from avatarchat.pipeline.lane import SpeechLane
from avatarchat.pipeline.provisional import Provisional
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.session import Session
from tests.fakes import Events, FakeEngine, speak


@pytest.fixture
async def session() -> AsyncIterator[tuple[Session, Events, FakeEngine]]:
    s = Session("s-provisional", queue_size=8, history_turns=10)
    events, engine = Events(), FakeEngine()
    s.relay = events  # every published event, in order, as the page would get it
    s.lane = SpeechLane(s.id, engine, s.publish, 8)
    s.lane.start()
    yield s, events, engine
    await s.close()


def answerer(s: Session, seen: list[list[Message]]):
    """What ``SpeechPipeline.reply`` does, in short: text events, one sentence to the lane, the answer stored
    only when the reply has its user message in history."""

    async def answer(reply: Reply, history: list[Message]) -> str:
        seen.append(history)
        text = f"You said: {history[-1].content}"
        s.publish(ReplyPartial(session=s.id, reply=reply.id, text=text))
        s.lane.submit(reply, text, "fake:voice")
        s.lane.end(reply)
        if reply.user_message is not None:
            s.answer(reply, text)
        s.publish(ReplyText(session=s.id, reply=reply.id, text=text))
        return text

    return answer


async def rendered(reply: Reply, clips: int = 1) -> None:
    async def until() -> None:
        while reply.clips < clips or not reply.rendered:
            await asyncio.sleep(0.002)

    await asyncio.wait_for(until(), 2)


async def test_a_provisional_answer_is_held_until_commit_then_released_in_order(session) -> None:
    s, events, _ = session
    seen: list[list[Message]] = []
    early = Provisional(s, "What time is it?", answerer(s, seen))
    await rendered(early.reply)
    assert events.items == [] and s.history == []  # written, voiced, rendered: nothing shown or remembered
    assert seen[0][-1].content == "What time is it?"  # ...but the LLM read the new words
    assert s.lane.state() == [] and s.interrupt() == []  # no page resumes it, no barge-in stops or stores it
    text = await early.commit(interrupt=s.interrupt)
    assert text == "You said: What time is it?"
    assert events.types() == ["reply_partial", "reply_text", "clip_ready", "speech_done"]
    assert {e["reply"] for e in events.items} == {early.reply.id}
    assert [(m.role, m.content) for m in s.history] == [("user", "What time is it?"), ("assistant", text)]
    assert [r.id for r in s.lane.speaking()] == [early.reply.id]  # it speaks from now on


async def test_a_discarded_answer_leaves_no_trace_and_its_late_events_are_swallowed(session) -> None:
    s, events, _ = session
    early = Provisional(s, "What time is it?", answerer(s, []))
    await rendered(early.reply)
    assert early.discard() == 1  # one clip rendered for nothing
    assert early.reply.cancelled and s.history == [] and events.items == []
    s.publish(ReplyText(session=s.id, reply=early.reply.id, text="late"))  # a render that finished late
    assert events.items == []
    assert await early.commit(interrupt=s.interrupt) is None  # discarded stays discarded


async def test_the_avatar_speaking_is_interrupted_at_commit_not_at_the_early_start(session) -> None:
    s, events, engine = session
    engine.gate.clear()  # the current reply's render runs on (the avatar is speaking)
    current = speak(s.lane, ["An earlier answer."])
    early = Provisional(s, "Stop, please.", answerer(s, []))
    await asyncio.sleep(0.02)
    assert not current.cancelled and "speech_cancelled" not in events.types()
    engine.gate.set()
    await early.commit(interrupt=s.interrupt)
    assert current.cancelled
    kinds = events.types()
    assert kinds.index("speech_cancelled") < kinds.index("reply_partial"), kinds


async def test_history_that_moved_on_meanwhile_makes_the_early_answer_unusable(session) -> None:
    s, events, _ = session
    early = Provisional(s, "What time is it?", answerer(s, []))
    await rendered(early.reply)
    typed, _ = s.begin_reply("Something typed meanwhile.", barge_in=True)
    assert await early.commit(interrupt=s.interrupt) is None
    assert early.reply.cancelled
    assert {e.get("reply") for e in events.items} <= {typed.id}, events.items
    assert [m.content for m in s.history] == ["Something typed meanwhile."]


async def test_a_failed_early_answer_is_not_committed(session) -> None:
    s, events, _ = session

    async def fails(reply: Reply, history: list[Message]) -> str:
        s.publish(ReplyPartial(session=s.id, reply=reply.id, text="half"))
        raise RuntimeError("the LLM went away")

    early = Provisional(s, "What time is it?", fails)
    await asyncio.sleep(0.01)
    assert await early.commit(interrupt=s.interrupt) is None
    assert events.items == [] and s.history == []
