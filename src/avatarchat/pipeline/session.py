"""Per-session state: identity, history, connected sockets, voice, and the session's speech lane.

Sessions are capabilities: the server issues each one an unguessable token (192 bits from the OS CSPRNG) and
only that token opens its socket, posts into it and names it; opening a socket never creates a session.
Nothing here is global: the ``SessionManager`` lives on the app and owns every session it made.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from avatarchat.data import Message
from avatarchat.errors import BadRequest, QueueFull, TooManySessions, UnknownSession
from avatarchat.events import Event
from avatarchat.pipeline.lane import Lane
from avatarchat.pipeline.outbox import Outbox
from avatarchat.pipeline.reply import Reply
from avatarchat.writing import CJK

__all__ = ["INTERRUPTED", "Outbox", "Session", "SessionManager", "SessionStore", "check_session_id"]
log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INTERRUPTED = "…"  # the answer stored in history when the person interrupted before hearing any of it


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise BadRequest("session_id must be the token POST /session returned (letters, digits, '-' or '_').")
    return session_id


class Session:
    MESSAGE_OVERHEAD_TOKENS = 4  # role and framing of one chat message, as OpenAI counts them

    def __init__(self, session_id: str, queue_size: int, history_turns: int,
                 history_token_budget: int = 3000) -> None:
        self.id = session_id
        self.label = session_id[:6]  # for logs: the token itself is a credential
        self.history: list[Message] = []
        self.history_turns = history_turns
        self.history_token_budget = history_token_budget
        self.queue_size = queue_size
        self.outboxes: set[Outbox] = set()
        self.lane: Lane | None = None
        self.last_seen = time.monotonic()
        self.voice: str | None = None
        # Redis mode: events go out through the lane (to every node holding this session) and come back in
        # through ``deliver``; embedded, they go straight to this process's sockets.
        self.relay: Callable[[Event], None] | None = None

    # -- events -------------------------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        if self.relay is not None:
            self.relay(event)
        else:
            self.deliver(event.wire())

    def deliver(self, wire: dict[str, Any]) -> None:
        """Hand an event to this process's sockets of the session."""
        for box in list(self.outboxes):
            box.put(wire)

    # -- shared state (Redis mode) ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"voice": self.voice, "history": [[m.role, m.content] for m in self.history]}

    def restore(self, state: dict[str, Any]) -> None:
        self.voice = state.get("voice")
        self.history = [Message(role=r, content=c) for r, c in state.get("history", [])]

    # -- history ------------------------------------------------------------------------------------------
    def remember(self, role: str, content: str) -> Message:
        """Append a message, then trim the oldest; returns the stored message."""
        message = Message(role=role, content=content)  # type: ignore[arg-type]
        self.history.append(message)
        self._trim()
        return message

    def answer(self, reply: Reply, text: str) -> None:
        """Store (or replace) ``reply``'s answer right after the user message it answers, so history stays in
        the order things were said even when a newer message arrived while it was being written."""
        user = reply.user_message
        index = next((i for i, m in enumerate(self.history) if m is user), None)
        if index is None:
            return  # trimmed away meanwhile
        message = Message(role="assistant", content=text)
        after = index + 1
        if after < len(self.history) and self.history[after].role == "assistant":
            self.history[after] = message
        else:
            self.history.insert(after, message)
        self._trim()

    def forget(self, message: Message | None) -> None:
        """Drop a user message whose reply failed, so two user messages never follow each other."""
        self.history = [m for m in self.history if m is not message]

    def _trim(self) -> None:
        """To ``history_turns`` turns, then to ``history_token_budget`` estimated tokens.

        The token trim never drops the newest user message (nor what follows it), and leaves the history
        starting at a user message, which some chat templates require.
        """
        keep = self.history_turns * 2
        if keep and len(self.history) > keep:
            del self.history[: len(self.history) - keep]
        if not self.history_token_budget:
            return
        users = [i for i, m in enumerate(self.history) if m.role == "user"]
        newest_user = users[-1] if users else len(self.history) - 1
        sizes = [self.estimate_tokens(m.content) + self.MESSAGE_OVERHEAD_TOKENS for m in self.history]
        total, drop = sum(sizes), 0
        while total > self.history_token_budget and drop < newest_user:
            total -= sizes[drop]
            drop += 1
        if drop:
            while drop < newest_user and self.history[drop].role != "user":
                drop += 1
            del self.history[:drop]

    @classmethod
    def estimate_tokens(cls, text: str) -> int:
        """A cheap, tokenizer-free token count: one per Hangul, kana or CJK character, one per 4 other characters.

        BPE tokenizers give English about 4 characters a token and Korean or Chinese about one character a token
        (often more), so this errs on the low side for CJK and is close for Latin text.
        """
        wide = len(CJK.findall(text))
        return wide + -(-(len(text) - wide) // 4)

    # -- replies ------------------------------------------------------------------------------------------
    def begin_reply(self, message: str, barge_in: bool) -> tuple[Reply, list[Reply]]:
        """Start a reply to ``message``. With ``barge_in`` every reply still queued, rendering or playing is
        cancelled first, and what the person heard of each is stored as its answer. Returns the new reply and
        the ones it cancelled."""
        lane = self._lane()
        cancelled: list[Reply] = []
        if barge_in:
            cancelled = self.interrupt()
        elif not lane.has_room():
            raise QueueFull("The avatar still has too much to say; wait for it to finish or interrupt it.")
        reply = Reply(user_message=self.remember("user", message))
        lane.begin(reply)
        return reply, cancelled

    def interrupt(self) -> list[Reply]:
        """Barge-in: cancel every reply still queued, rendering or playing (each gets ``speech_cancelled``) and
        store what the person heard of each as its answer. A typed message and the onset of speech both come
        here. Returns the replies it cancelled."""
        cancelled = self._lane().cancel_all()
        for old in cancelled:
            self.answer(old, old.heard_text() or INTERRUPTED)
        return cancelled

    def _lane(self) -> Lane:
        if self.lane is None:
            raise RuntimeError("session has no speech lane")
        return self.lane

    def busy(self) -> bool:
        """Connected, or still speaking: such a session is never reaped nor evicted."""
        return bool(self.outboxes) or (self.lane is not None and bool(self.lane.speaking()))

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.aclose()


class SessionStore(Protocol):
    """Where sessions' shared state lives when several nodes serve them (Redis mode)."""

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save(self, session_id: str, state: dict[str, Any]) -> None: ...


class SessionManager:
    """Issues sessions and owns them; ``make_lane`` gives each new session its speech lane. With a ``store``,
    a session another node issued is adopted on first use, and its state is read before and saved after
    each chat, so any node can take the session's next message."""

    def __init__(self, max_sessions: int, queue_size: int, history_turns: int,
                 make_lane: Callable[[Session], Lane], history_token_budget: int = 3000,
                 store: SessionStore | None = None) -> None:
        self.store = store
        self.max_sessions = max_sessions
        self.queue_size = queue_size
        self.history_turns = history_turns
        self.history_token_budget = history_token_budget
        self._make_lane = make_lane
        self.sessions: dict[str, Session] = {}
        self._closing: set[asyncio.Task] = set()  # evicted sessions still closing (kept so they finish)

    async def find(self, token: str, refresh: bool = False) -> Session:
        """``get``, adopting a session another node issued (Redis mode); ``refresh`` re-reads its state."""
        check_session_id(token)
        if self.store is not None and (refresh or token not in self.sessions):
            state = await self.store.load(token)
            if state is not None:
                local = self.sessions.get(token)
                if local is None:
                    local = self._add(token)
                    log.info("session %s… adopted from the shared store", local.label)
                local.restore(state)
        session = self.get(token)
        if self.store is not None and session.lane is not None:
            await session.lane.ready()  # its events reach this node before anything is sent
        return session

    async def save(self, session: Session) -> None:
        if self.store is not None:
            await self.store.save(session.id, session.snapshot())

    def create(self) -> Session:
        """A new session with a fresh token. When the table is full, the session idle the longest (no socket,
        nothing to say) makes room; only when every session is in use is the answer 503."""
        if len(self.sessions) >= self.max_sessions and not self._evict_one():
            raise TooManySessions(f"The server is at its limit of {self.max_sessions} sessions; try again later.")
        s = self._add(secrets.token_urlsafe(24))
        log.info("session %s… created (%d live)", s.label, len(self.sessions))
        return s

    def _add(self, token: str) -> Session:
        s = Session(token, self.queue_size, self.history_turns, self.history_token_budget)
        s.lane = self._make_lane(s)
        self.sessions[token] = s
        return s

    def get(self, token: str) -> Session:
        check_session_id(token)
        s = self.sessions.get(token)
        if s is None:
            raise UnknownSession("This session does not exist (it expired, or the server restarted); "
                                 "start a new one with POST /session.")
        s.last_seen = time.monotonic()
        return s

    def _evict_one(self) -> bool:
        idle = [s for s in self.sessions.values() if not s.busy()]
        if not idle:
            return False
        oldest = min(idle, key=lambda s: s.last_seen)
        self.sessions.pop(oldest.id)
        task = asyncio.ensure_future(oldest.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        log.info("session %s… evicted to make room", oldest.label)
        return True

    async def reap(self, idle_s: float) -> list[str]:
        """Close sessions nobody has used for ``idle_s`` seconds (no socket, nothing being spoken)."""
        now = time.monotonic()
        stale = [sid for sid, s in self.sessions.items() if not s.busy() and now - s.last_seen > idle_s]
        for sid in stale:
            await self.sessions.pop(sid).close()
            log.info("session %s… closed after %.0f s idle", sid[:6], idle_s)
        return stale

    def jobs_waiting(self) -> int:
        return sum(s.lane.waiting for s in self.sessions.values() if s.lane is not None)

    def queue_depths(self) -> dict[str, int]:
        return {sid: s.lane.waiting if s.lane else 0 for sid, s in self.sessions.items()}

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions.values()), return_exceptions=True)
        self.sessions.clear()
