"""An answer started before its spoken turn is over, kept back until the turn really ends.

The listener calls a spoken turn over only after a hangover of silence, but the words before the pause are
usually known sooner. An answer started then is *provisional*: the LLM writes it and the lane voices and
renders it, yet its events wait in the session's ``Held`` and its user message stays out of history. When the
turn ends with the same words, ``commit`` puts the user message in history and sends the held events at once,
in order (the page gets the text and an already finished clip); when the person goes on speaking,
``discard`` cancels the work and drops the events: nothing was shown, heard or remembered.

Embedded mode only. In Redis mode a reply's clips are announced by worker processes straight into the
session's shared event stream, where nothing can hold them back, so the server there answers when the turn
ends, as before (see docs/protocol.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from avatarchat.data import Message
from avatarchat.events import Event
from avatarchat.pipeline.reply import Reply, new_id

if TYPE_CHECKING:
    from avatarchat.pipeline.session import Session

DROPPED_KEPT = 16  # discarded replies whose late events are still swallowed (a cancelled render may finish)


class Held:
    """One session's events of provisional replies, kept back until their reply is committed or discarded."""

    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._dropped: deque[str] = deque(maxlen=DROPPED_KEPT)

    def hold(self, reply_id: str) -> None:
        self._events[reply_id] = []

    def catch(self, event: Event) -> bool:
        """True if ``event`` belongs to a held (kept) or discarded (dropped) reply: it is not published now."""
        reply_id = getattr(event, "reply", None)
        if reply_id is None:
            return False
        held = self._events.get(reply_id)
        if held is not None:
            held.append(event)
            return True
        return reply_id in self._dropped

    def release(self, reply_id: str) -> list[Event]:
        """The held events of a committed reply, in the order they were published; it is held no more."""
        return self._events.pop(reply_id, [])

    def drop(self, reply_id: str) -> None:
        """A discarded reply: its held events and any that come later are thrown away."""
        self._events.pop(reply_id, None)
        self._dropped.append(reply_id)


Answer = Callable[[Reply, list[Message]], Awaitable[str]]


class Provisional:
    """One answer started early. ``answer(reply, history)`` writes and speaks it (``SpeechPipeline.reply``)
    with ``history`` as the LLM's context: the session's history and the provisional user message, which the
    session itself only gets on ``commit``."""

    def __init__(self, session: Session, message: str, answer: Answer) -> None:
        assert session.lane is not None
        self.session, self.message = session, message
        self.reply = Reply(reply_id=new_id())
        self.reply.hold()
        session.held.hold(self.reply.id)
        session.lane.begin(self.reply)
        self._base = list(session.history)
        self._task = asyncio.ensure_future(answer(self.reply, [*self._base, Message("user", message, self.reply.id)]))
        self._task.add_done_callback(_retrieved)
        self.outcome: str | None = None  # "committed" or "discarded" once decided

    def usable(self) -> bool:
        """Still worth committing: not cancelled, not failed, and written for the history the session has now
        (a typed message or another turn in the meantime would make it an answer to an old conversation)."""
        if self.outcome is not None or self.reply.cancelled:
            return False
        if self._task.done() and (self._task.cancelled() or self._task.exception() is not None):
            return False  # failed unseen: the turn is answered afresh, and fails (or not) in the open
        now = self.session.history
        return len(now) == len(self._base) and all(a is b for a, b in zip(now, self._base, strict=True))

    def discard(self) -> int:
        """Cancel the answer (its LLM stream, queued sentences and running renders) and drop its events;
        returns the clips it had rendered, now wasted. Nothing of it reaches the page or history."""
        if self.outcome is not None:
            return 0
        self.outcome = "discarded"
        self.reply.cancel()
        self._task.cancel()
        self.session.held.drop(self.reply.id)
        return self.reply.clips

    async def commit(self, interrupt: Callable[[], object]) -> str | None:
        """The turn ended with this answer's words: ``interrupt`` stops what the avatar still says (a barge-in,
        as a new message makes), the user message goes into history, the held events go out in order and
        later ones flow as usual. Returns the answer's text once written; None when it was not usable (it is
        discarded: answer the turn the ordinary way)."""
        if not self.usable():
            self.discard()
            return None
        self.outcome = "committed"
        interrupt()
        self.reply.user_message = self.session.remember("user", self.message, turn=self.reply.id)
        self.reply.release()
        for event in self.session.held.release(self.reply.id):
            self.session.publish(event)
        if self._task.done():  # written while held: the answer could not be stored until now
            self.session.answer(self.reply, self._task.result())
        return await self._task


def _retrieved(task: asyncio.Future) -> None:
    """A discarded answer's failure (or cancellation) concerns nobody: no warning about it."""
    if not task.cancelled():
        task.exception()
