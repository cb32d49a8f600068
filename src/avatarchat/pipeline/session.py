"""Per-session state: identity, history, connected sockets, voice, and the session's speech lane.

Sessions are capabilities: the server issues each one an unguessable token (192 bits from the OS CSPRNG) and
only that token opens its socket, posts into it and names it; opening a socket never creates a session.
Nothing here is global: the ``SessionManager`` lives on the app and owns every session it made.

With a shared store (Redis mode) a session records what it changes (history entries, its voice) until
``SessionManager.save`` hands them over, so what two nodes change in one session merges (see history.py).
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
from avatarchat.errors import (
    BadRequest,
    QueueFull,
    StoreUnavailable,
    TooManyForClient,
    TooManySessions,
    UnknownSession,
)
from avatarchat.events import Event
from avatarchat.pipeline.eventlog import EventLog, MemoryLog
from avatarchat.pipeline.history import MESSAGE_OVERHEAD_TOKENS, History, estimate_tokens
from avatarchat.pipeline.lane import Lane
from avatarchat.pipeline.outbox import Outbox
from avatarchat.pipeline.provisional import Held
from avatarchat.pipeline.reply import Reply, new_id
from avatarchat.pipeline.turns import Turns

__all__ = ["INTERRUPTED", "Outbox", "Session", "SessionManager", "SessionStore", "check_session_id"]
log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INTERRUPTED = "…"  # the answer stored in history when the person interrupted before hearing any of it


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise BadRequest("session_id must be the token POST /session returned (letters, digits, '-' or '_').")
    return session_id


class Session:
    MESSAGE_OVERHEAD_TOKENS = MESSAGE_OVERHEAD_TOKENS

    def __init__(self, session_id: str, queue_size: int, history_turns: int,
                 history_token_budget: int = 3000, shared: bool = False) -> None:
        """``shared``: its state lives in a store other nodes read too (changes are recorded for it)."""
        self.id = session_id
        self.label = session_id[:6]  # for logs: the token itself is a credential
        self.owner = ""  # the client address that created it: quotas and eviction are per client
        self.chat = History(history_turns, history_token_budget, shared)
        self.queue_size = queue_size
        self.outboxes: set[Outbox] = set()
        self.lane: Lane | None = None
        self.turns = Turns(self.label)  # its turns run as its own tasks, not its sockets' (see turns.py)
        self.last_seen = time.monotonic()
        self._voice: str | None = None
        self._voice_changed = False
        self._avatar: str | None = None  # the id of the avatar it chose (POST /avatars, /chat); None: the default
        self._avatar_changed = False
        # Redis mode: events go out through the lane (to every node holding this session) and come back in
        # through ``deliver``; embedded, they go straight to this process's sockets. Either way ``log`` keeps
        # the recent ones for a page that reconnects.
        self.relay: Callable[[Event], None] | None = None
        self._memory = MemoryLog()
        self.log: EventLog = self._memory
        self.held = Held()  # events of answers started before their spoken turn ended (pipeline/provisional.py)

    # -- events -------------------------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        if self.held.catch(event):
            return
        if self.relay is not None:
            self.relay(event)
        else:
            self.deliver(self._memory.record(event.wire()))

    def deliver(self, wire: dict[str, Any]) -> None:
        """Hand an event to this process's sockets of the session."""
        for box in list(self.outboxes):
            box.put(wire)

    # -- shared state (Redis mode) ------------------------------------------------------------------------
    @property
    def voice(self) -> str | None:
        return self._voice

    @voice.setter
    def voice(self, voice: str | None) -> None:
        self._voice, self._voice_changed = voice, True

    @property
    def avatar(self) -> str | None:
        return self._avatar

    @avatar.setter
    def avatar(self, avatar: str | None) -> None:
        self._avatar, self._avatar_changed = avatar, True

    def take_changes(self) -> dict[str, Any]:
        """What this process changed since the last call, for the store: ``history`` entries to append and,
        if they were set here, ``voice`` and ``avatar`` ("" for the default). ``put_back`` returns them when they
        could not be saved."""
        changes: dict[str, Any] = {"history": self.chat.take()}
        if self._voice_changed and self._voice is not None:
            changes["voice"] = self._voice
        if self._avatar_changed:
            changes["avatar"] = self._avatar or ""
        self._voice_changed = self._avatar_changed = False
        return changes

    def put_back(self, changes: dict[str, Any]) -> None:
        self.chat.put_back(changes["history"])
        self._voice_changed = self._voice_changed or "voice" in changes
        self._avatar_changed = self._avatar_changed or "avatar" in changes

    def restore(self, state: dict[str, Any]) -> None:
        """The store's state, with what this process changed and has not saved yet on top."""
        if not self._voice_changed:
            self._voice = state.get("voice")
        if not self._avatar_changed:
            self._avatar = state.get("avatar") or None
        self.chat.restore(state.get("history", []))

    # -- history ------------------------------------------------------------------------------------------
    @property
    def history(self) -> list[Message]:
        return self.chat.messages

    @property
    def history_token_budget(self) -> int:
        return self.chat.token_budget

    def remember(self, role: str, content: str, turn: str = "") -> Message:
        """Append a message, then trim the oldest; returns the stored message."""
        return self.chat.remember(role, content, turn)

    def answer(self, reply: Reply, text: str, heard: bool = False) -> None:
        """Store (or replace) ``reply``'s answer right after the user message it answers, even when a newer
        message arrived while it was being written. ``heard``: what the person heard of an interrupted reply."""
        self.chat.answer(reply.id, reply.user_message, text, heard)

    def forget(self, message: Message | None) -> None:
        """Drop a user message whose reply failed, so two user messages never follow each other."""
        self.chat.forget(message)

    def settle(self, reply: Reply) -> None:
        """A turn stopped before its answer was stored (its task was cancelled: the session closed): the answer
        is what the person heard of it, as for a barge-in, so history still alternates. A provisional answer
        whose question never entered history (discarded, pipeline/provisional.py) stores nothing."""
        if reply.user_message is None:
            return
        if not any(m.role == "assistant" and m.turn == reply.id for m in self.history):
            self.answer(reply, reply.heard_text() or INTERRUPTED, heard=True)

    @classmethod
    def estimate_tokens(cls, text: str) -> int:
        return estimate_tokens(text)

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
        turn = new_id()
        reply = Reply(user_message=self.remember("user", message, turn=turn), reply_id=turn)
        lane.begin(reply)
        return reply, cancelled

    def interrupt(self) -> list[Reply]:
        """Barge-in: cancel every reply still queued, rendering or playing (each gets ``speech_cancelled``) and
        store what the person heard of each as its answer. A typed message and the onset of speech both come
        here. Returns the replies it cancelled."""
        cancelled = self._lane().cancel_all()
        for old in cancelled:
            self.answer(old, old.heard_text() or INTERRUPTED, heard=True)
        return cancelled

    def _lane(self) -> Lane:
        if self.lane is None:
            raise RuntimeError("session has no speech lane")
        return self.lane

    def busy(self) -> bool:
        """Connected, answering, or still speaking: such a session is never reaped nor evicted."""
        return bool(self.outboxes) or bool(self.turns) or (self.lane is not None and bool(self.lane.speaking()))

    async def close(self) -> None:
        await self.turns.aclose()
        if self.lane is not None:
            await self.lane.aclose()


class SessionStore(Protocol):
    """Where sessions' shared state lives when several nodes serve them (Redis mode): ``load`` gives
    ``{"voice", "avatar", "history": entries}``; ``save`` appends ``changes["history"]`` (and sets ``voice`` and
    ``avatar`` if given), so what two nodes save merges."""

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save(self, session_id: str, changes: dict[str, Any]) -> None: ...


def fair_backlog(waiting_by_client: dict[str, int], client: str) -> int:
    """The sentences ahead of a new one of ``client`` if clients were served in turn: all of its own, and of
    each other client's at most one more than that (admission control: another client's long backlog must not
    make this one's replies text only)."""
    own = waiting_by_client.get(client, 0)
    return own + sum(min(n, own + 1) for c, n in waiting_by_client.items() if c != client)


class SessionManager:
    """Issues sessions and owns them; ``make_lane`` gives each new session its speech lane. With a ``store``,
    a session another node issued is adopted on first use (counted against ``max_sessions``, which is per
    node), and its state is read before each chat and saved as it changes, so any node can take the
    session's next message."""

    def __init__(self, max_sessions: int, queue_size: int, history_turns: int,
                 make_lane: Callable[[Session], Lane], history_token_budget: int = 3000,
                 store: SessionStore | None = None, per_client: int | None = None) -> None:
        self.store = store
        self.max_sessions = max_sessions
        self.per_client = per_client  # None: no quota per client
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
                    self._make_room()
                    local = self._add(token)
                    log.info("session %s… adopted from the shared store", local.label)
                local.restore(state)
        session = self.get(token)
        if self.store is not None and session.lane is not None:
            await session.lane.ready()  # its events reach this node before anything is sent
        return session

    async def save(self, session: Session) -> None:
        """Hand what changed to the store (Redis mode); kept for the next try when Redis is unreachable."""
        if self.store is None:
            return
        changes = session.take_changes()
        try:
            await self.store.save(session.id, changes)
        except StoreUnavailable:
            session.put_back(changes)
            raise

    def create(self, owner: str = "") -> Session:
        """A new session with a fresh token for client ``owner``. A client at its quota (``per_client``) makes
        room among its own sessions (the one idle the longest), else gets 429; a full table makes room by
        evicting an idle session of the client holding the most, so no client can push out another's
        conversation by asking for many; only when every session is in use is the answer 503."""
        mine = [x for x in self.sessions.values() if x.owner == owner]
        if self.per_client is not None and len(mine) >= self.per_client and not self._evict_one(mine):
            raise TooManyForClient(f"This address already has {len(mine)} conversations open, the most one "
                                   "address may have; close one of them or try again later.")
        self._make_room()
        s = self._add(secrets.token_urlsafe(24))
        s.owner = owner
        log.info("session %s… created (%d live)", s.label, len(self.sessions))
        return s

    def _make_room(self) -> None:
        if len(self.sessions) < self.max_sessions:
            return
        by_owner: dict[str, list[Session]] = {}
        for x in self.sessions.values():
            by_owner.setdefault(x.owner, []).append(x)
        # The client holding the most sessions gives one up first (its idlest), then the next, and so on.
        for group in sorted(by_owner.values(), key=len, reverse=True):
            if self._evict_one(group):
                return
        raise TooManySessions(f"The server is at its limit of {self.max_sessions} sessions; try again later.")

    def _add(self, token: str) -> Session:
        s = Session(token, self.queue_size, self.history_turns, self.history_token_budget,
                    shared=self.store is not None)
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

    def _evict_one(self, among: list[Session]) -> bool:
        idle = [s for s in among if not s.busy()]
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
        def stale(s: Session) -> bool:
            return not s.busy() and time.monotonic() - s.last_seen > idle_s

        closed = []
        for sid in [sid for sid, s in self.sessions.items() if stale(s)]:
            # Checked again at its turn: while an earlier one was closing, this one may have got a socket or a
            # message (a reaped session would lose its page's conversation).
            s = self.sessions.get(sid)
            if s is None or not stale(s):
                continue
            del self.sessions[sid]
            await s.close()
            closed.append(sid)
            log.info("session %s… closed after %.0f s idle", sid[:6], idle_s)
        return closed

    def jobs_waiting(self) -> int:
        return sum(s.lane.waiting for s in self.sessions.values() if s.lane is not None)

    def others_speaking(self, session: Session) -> bool:
        """Whether another session on this node has a reply still queued, rendering or playing."""
        return any(x is not session and x.lane is not None and x.lane.speaking() for x in self.sessions.values())

    def jobs_waiting_by_owner(self) -> dict[str, int]:
        """Sentences waiting, per client (admission control shares the speech backlog fairly between them)."""
        out: dict[str, int] = {}
        for x in self.sessions.values():
            if x.lane is not None and x.lane.waiting:
                out[x.owner] = out.get(x.owner, 0) + x.lane.waiting
        return out

    def queue_depths(self) -> dict[str, int]:
        return {sid: s.lane.waiting if s.lane else 0 for sid, s in self.sessions.items()}

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions.values()), return_exceptions=True)
        self.sessions.clear()
