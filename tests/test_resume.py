"""A page that reconnects (embedded mode): ``session_state`` first, then the events it missed, in order and once,
then the live ones; a page that was away too long is told so; a forged ``after`` is refused."""

from __future__ import annotations

import pytest

from avatarchat.errors import BadRequest
from avatarchat.events import ClipReady, ReplyText, SpeechDone
from avatarchat.pipeline.eventlog import EVENT_LOG_SIZE, check_event_id
from avatarchat.pipeline.outbox import Outbox
from avatarchat.pipeline.session import Session
from avatarchat.server.resume import HISTORY_CHARS, HISTORY_MAX, REPLAY_MAX, attach


class _Lane:
    """Stands in for a speech lane: ``live`` are the replies still to be heard."""

    def __init__(self, live: list[str] = ()) -> None:
        self.live = list(live)

    def state(self) -> list[dict]:
        return [{"reply": r, "clips": [], "failed": [], "played": [], "done": False, "sentences": None}
                for r in self.live]


def session(live: list[str] = ()) -> Session:
    s = Session("s1", queue_size=4, history_turns=4)
    s.lane = _Lane(live)
    return s


def said(s: Session, text: str, reply: str = "r1") -> None:
    s.publish(ReplyText(session=s.id, reply=reply, text=text))


def drain(box: Outbox) -> list[dict]:
    out = []
    while not box.queue.empty():
        out.append(box.queue.get_nowait())
    return out


async def test_a_page_gets_what_it_missed_once_in_order_then_the_live_events() -> None:
    s = session()
    page = await attach(s, None)
    said(s, "one")
    [state, one] = drain(page)
    assert state["type"] == "session_state" and state["last_id"] == "0-0" and "resumed" not in state
    s.outboxes.discard(page)  # the socket drops
    for text in ("two", "three"):
        said(s, text)
    again = await attach(s, one["id"])
    said(s, "four")
    got = drain(again)
    assert got[0]["type"] == "session_state" and got[0]["resumed"] is True and got[0]["last_id"] == "0-3"
    assert [e["text"] for e in got[1:]] == ["two", "three", "four"]
    assert [e["id"] for e in got[1:]] == ["0-2", "0-3", "0-4"]


async def test_a_page_that_missed_nothing_gets_nothing_twice() -> None:
    s = session()
    said(s, "one")
    box = await attach(s, "0-1")
    box.put({"id": "0-1", "type": "reply_text"})  # a late copy of what the page has
    said(s, "two")
    got = drain(box)
    assert got[0]["resumed"] is True and [e.get("text") for e in got[1:]] == ["two"]


async def test_clips_of_replies_that_are_over_are_not_replayed_but_their_text_is() -> None:
    s = session(live=["live"])
    said(s, "zero")
    for reply in ("over", "live"):
        s.publish(ClipReady(session=s.id, reply=reply, job="j", seq=0, url="/clips/x.mp4", text="Hi.",
                            duration_s=1.0))
        s.publish(SpeechDone(session=s.id, reply=reply, clips=1, sentences=1))
    said(s, "over's text", reply="over")
    got = drain(await attach(s, "0-1"))
    assert [(e["type"], e.get("reply")) for e in got[1:]] == [
        ("clip_ready", "live"), ("speech_done", "live"), ("reply_text", "over")]


async def test_a_page_away_longer_than_the_log_reaches_is_told_and_gets_what_is_left() -> None:
    s = session()
    for i in range(EVENT_LOG_SIZE + 10):
        said(s, str(i))
    got = drain(await attach(s, "0-5"))  # events 0-6 ... 0-10 are gone
    assert got[0]["resumed"] is False
    assert [e["text"] for e in got[1:]] == [str(i) for i in range(EVENT_LOG_SIZE + 10 - REPLAY_MAX,
                                                                  EVENT_LOG_SIZE + 10)]


@pytest.mark.parametrize("forged", ["", "1", "-1", "1-x", "9" * 21 + "-0", "1-2-3", "0-0; DROP", "١-١"])
def test_a_forged_after_is_refused(forged: str) -> None:
    with pytest.raises(BadRequest):
        check_event_id(forged)


async def test_a_catch_up_longer_than_the_outbox_holds_keeps_the_newest_and_says_so() -> None:
    s = session()
    for i in range(REPLAY_MAX + 20):  # all still in the log: only the cap leaves some out
        said(s, str(i))
    box = await attach(s, "0-1")
    got = drain(box)
    assert got[0]["resumed"] is False and not box.overflowed.is_set()  # the socket is not closed for it
    assert [e["text"] for e in got[1:]] == [str(i) for i in range(20, REPLAY_MAX + 20)]


async def test_an_after_that_was_never_an_event_of_the_session_is_ignored_not_trusted() -> None:
    s = session()
    said(s, "one")
    box = await attach(s, "99999-0")  # e.g. from before a restart: trusting it would drop every live event
    said(s, "two")
    got = drain(box)
    assert got[0]["resumed"] is False and [e["text"] for e in got[1:]] == ["two"]


async def test_a_reloaded_page_gets_the_conversation_back_newest_messages_first_cut_to_size() -> None:
    s = Session("s1", queue_size=4, history_turns=HISTORY_MAX, history_token_budget=0)
    s.lane = _Lane()
    for i in range(HISTORY_MAX):  # more messages than the state carries: only the newest come
        s.remember("user", f"question {i}", turn=f"r{i}")
        s.remember("assistant", ("long " * 2000) if i == HISTORY_MAX - 1 else f"answer {i}", turn=f"r{i}")
    [state] = drain(await attach(s, None))
    history = state["history"]
    assert len(s.history) == 2 * HISTORY_MAX and len(history) == HISTORY_MAX
    assert history == [{"role": m.role, "content": m.content[:HISTORY_CHARS], "reply": m.turn}
                       for m in s.history[-HISTORY_MAX:]]
    assert history[-2] == {"role": "user", "content": f"question {HISTORY_MAX - 1}", "reply": f"r{HISTORY_MAX - 1}"}
    assert len(history[-1]["content"]) == HISTORY_CHARS
