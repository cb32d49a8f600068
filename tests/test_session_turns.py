"""A session's turns are its own tasks (pipeline/turns.py): whoever waits for a turn may go away without cutting it
short; a session with a turn running is never reaped; closing the session cancels its turns, leaves no task
behind and leaves history alternating (the answer is what was heard, or ``…``)."""

from __future__ import annotations

import asyncio

import pytest

from avatarchat.errors import UnknownSession
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.session import INTERRUPTED, Session, SessionManager


class _Lane:
    """Stands in for a speech lane: every reply begun is speaking until cancelled."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.closed = False

    def has_room(self) -> bool:
        return True

    def begin(self, reply: Reply) -> None:
        self.replies.append(reply)

    def cancel_all(self) -> list[Reply]:
        return []

    def speaking(self) -> list[Reply]:
        return []

    async def aclose(self) -> None:
        self.closed = True


def manager() -> SessionManager:
    return SessionManager(max_sessions=4, queue_size=4, history_turns=4, make_lane=lambda s: _Lane())


async def answering(session: Session, started: asyncio.Event, finished: list[str]) -> str:
    """A turn whose answer takes a while to write (as an LLM's would)."""
    reply, _ = session.begin_reply("What time is it?", barge_in=True)
    started.set()
    try:
        await asyncio.sleep(0.3)
    except asyncio.CancelledError:
        session.settle(reply)
        raise
    session.answer(reply, "Noon.")
    finished.append("Noon.")
    return "Noon."


async def test_a_caller_that_goes_away_does_not_cut_the_turn_short() -> None:
    session = manager().create()
    started, finished = asyncio.Event(), []
    waiter = asyncio.create_task(session.turns.run(answering(session, started, finished)))
    await started.wait()
    waiter.cancel()  # the socket closed
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(session.turns) == 1 and session.busy()
    while session.turns:
        await asyncio.sleep(0.01)
    assert finished == ["Noon."]
    assert [(m.role, m.content) for m in session.history] == [("user", "What time is it?"), ("assistant", "Noon.")]


async def test_a_session_with_a_turn_running_is_not_reaped_and_closing_it_cancels_the_turn() -> None:
    sessions = manager()
    session = sessions.create()
    started, finished = asyncio.Event(), []
    turn = session.turns.start(answering(session, started, finished))
    await started.wait()
    assert await sessions.reap(idle_s=-1) == []  # busy: it is answering
    await session.close()
    assert turn.cancelled() and not session.turns and session.lane.closed and finished == []
    assert [(m.role, m.content) for m in session.history] == [("user", "What time is it?"),
                                                             ("assistant", INTERRUPTED)]
    work = answering(session, asyncio.Event(), finished)
    with pytest.raises(UnknownSession):
        session.turns.start(work)  # a closed session starts nothing (and the coroutine is closed, not leaked)
    assert work.cr_frame is None
