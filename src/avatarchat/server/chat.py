"""One chat turn, however it came in: typed (``POST /chat``) or spoken (a final transcript on the socket).

Both paths validate the message the same way, interrupt or queue behind the avatar's current speech, apply
admission control and stream the reply through the session's speech lane, so a spoken message is in every
way a typed one. Both run as tasks of the session, from its current state to its saved answer, whoever waits.
A spoken turn may also be answered early, at its pause (``early_answer``), and that answer shown only once the
turn is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from avatarchat.data import Message
from avatarchat.errors import AvatarChatError, BadRequest, ShuttingDown, StoreUnavailable, UnknownSession
from avatarchat.pipeline.provisional import Provisional
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.session import Session
from avatarchat.services import Services

log = logging.getLogger(__name__)


def check_message(s: Services, message: str) -> str:
    message = message.strip()
    if not message:
        raise BadRequest("message is empty: type something for the avatar to answer.")
    if len(message) > s.settings.max_message_chars:
        raise BadRequest(f"message is {len(message)} characters; the limit is {s.settings.max_message_chars}.")
    return message


async def converse(s: Services, session: Session, message: str, *, queue: bool = False,
                   voice: str | None = None) -> tuple[Reply, str]:
    """Answer ``message`` in ``session``: returns the reply handle and its whole text (clips follow as events).

    The turn runs as a task of the session (``Session.turns``): a socket that closes or a request that is
    dropped meanwhile stops waiting for it, but the answer is still written, spoken to the session's event log
    (a reconnecting page catches up on it) and stored in history."""
    if s.draining:
        raise ShuttingDown("The server is restarting; send your message again in a moment.")
    message = check_message(s, message)
    voice_id = s.tts.resolve(voice).id if voice else None
    return await session.turns.run(_turn(s, session, message, queue, voice_id))


async def _turn(s: Services, session: Session, message: str, queue: bool,
                voice_id: str | None) -> tuple[Reply, str]:
    """One turn from the session's current state (Redis mode: what other nodes saved, such as a voice chosen
    or a message typed there) to its saved answer."""
    session = await s.sessions.find(session.id, refresh=True)
    if voice_id is not None:
        session.voice = voice_id
    reply, cancelled = session.begin_reply(message, barge_in=not queue)
    if cancelled:
        s.metrics.cancelled.inc(len(cancelled))
    return reply, await _speak(s, session, reply)


async def _speak(s: Services, session: Session, reply: Reply, history: list[Message] | None = None) -> str:
    """Admission, then the reply written and spoken through the session's lane; its text."""
    try:
        try:
            speak, wait_s = await _admit(s, session)
        except BaseException:
            session.lane.end(reply)  # never left "speaking" with nothing to say
            session.forget(reply.user_message)  # nor a question nobody will answer
            raise
        busy = wait_s > s.settings.first_chunk_max_wait_s
        growth = s.settings.chunk_growth or None
        # The old rule without growth: busy, the first sentence is said whole. With it: chunks grow when busy at
        # admission, or when a chunk is cut (replies that came in together see each other only then).
        options = {"short_first": not busy} if growth is None else \
            {"growth": growth, "grow_if": lambda: busy or s.sessions.others_speaking(session),
             "idle_growth": s.settings.chunk_growth_idle or None}
        try:
            return await s.pipeline.reply(session, reply, speak=speak, history=history, **options)
        except asyncio.CancelledError:
            session.settle(reply)  # the session is closing: what was heard, so history still alternates
            raise
        except Exception:
            session.forget(reply.user_message)  # no answer (the pipeline forgets on its own errors; this, on any)
            raise
    finally:
        await s.sessions.save(session)  # Redis mode: history and voice for whichever node takes the next turn


class EarlyAnswer:
    """A spoken turn answered at its pause, before the turn is over (see pipeline/provisional.py): the
    listener commits it when the turn ends with the same words and discards it when the person goes on."""

    def __init__(self, s: Services, session: Session, message: str) -> None:
        self._s, self._session = s, session
        self._provisional = Provisional(session, message, lambda reply, history: _speak(s, session, reply, history))

    @property
    def message(self) -> str:
        return self._provisional.message

    def discard(self) -> int:
        return self._provisional.discard()

    async def commit(self) -> bool:
        """True: the answer is the turn's, its events are out. False: it was discarded (it failed unseen, or
        the conversation moved on meanwhile); the turn must be answered the ordinary way. Once committed the
        answer is the session's turn: the socket closing while it is still being written (a reload right after
        the question) does not cancel it, as for any other turn (``Session.turns``)."""
        if self._s.draining:
            self.discard()
            return False
        try:
            return await self._session.turns.run(self._provisional.commit(self._interrupt)) is not None
        except UnknownSession:  # the session itself ended meanwhile: nobody is left to answer
            self.discard()
            return True
        except AvatarChatError as exc:  # the page was told of the failure, as for any reply
            log.info("early answer of session %s… failed: %s", self._session.label, exc.code)
            return True

    def _interrupt(self) -> None:
        cancelled = self._session.interrupt()
        if cancelled:
            self._s.metrics.cancelled.inc(len(cancelled))


def early_answer(s: Services, session: Session, message: str) -> EarlyAnswer | None:
    """Start answering ``message`` provisionally; None where that is not done: turned off, shutting down,
    Redis mode (its events cannot be held back), or a message ``converse`` would refuse."""
    if not s.settings.voice_early_answer or s.backplane is not None or s.draining or session.lane is None:
        return None
    try:
        message = check_message(s, message)
    except BadRequest:
        return None
    return EarlyAnswer(s, session, message)


async def interrupted(s: Services, session: Session) -> None:
    """After a barge-in without a message (speech onset): the session's current state is read (Redis mode: a
    voice chosen on another node decides the language the coming turn is heard in) and the answers the barge-in
    stored (what the person heard) are saved, so every node's next turn sees them."""
    with contextlib.suppress(StoreUnavailable):
        session = await s.sessions.find(session.id, refresh=True)
        await s.sessions.save(session)


async def _admit(s: Services, session: Session) -> tuple[bool, float]:
    """Share the new message at once (Redis mode: a /chat that another node takes meanwhile sees it; if Redis
    blinks, the save after the reply tries again), then admission control: rather than a minute of silence,
    a busy server (or cluster) answers in text only."""
    with contextlib.suppress(StoreUnavailable):
        await s.sessions.save(session)
    client = session.owner or None  # unknown for a session adopted from another node (Redis mode)
    if client is not None and s.client_backlog(client) >= s.settings.max_client_backlog:
        return False, float("inf")  # this client already has more speech waiting than its share
    _, wait_s = await s.speech_backlog(client)
    return wait_s <= s.settings.max_speech_wait_s, wait_s
