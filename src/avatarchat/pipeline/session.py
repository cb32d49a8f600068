"""Per-session state: history, connected sockets, the reply being spoken and its two-stage job queue.

Nothing here is global: the ``SessionManager`` lives on the app and owns every session it made.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from avatarchat.errors import BadRequest, QueueFull, TooManySessions
from avatarchat.events import Event, SpeechCancelled
from avatarchat.llm.base import Message
from avatarchat.pipeline.jobs import Reply, ReplyEnd, SpeechJob
from avatarchat.scripts import CJK

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id or ""):
        raise BadRequest("session_id must be 1-64 characters of letters, digits, '-' or '_'.")
    return session_id


class Outbox:
    """One WebSocket's outgoing events. Bounded, so a stalled client cannot hold memory or block others."""

    def __init__(self, size: int = 256) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.overflowed = asyncio.Event()

    def put(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()


class Session:
    def __init__(self, session_id: str, queue_size: int, history_turns: int,
                 history_token_budget: int = 3000) -> None:
        self.id = session_id
        self.history: list[Message] = []
        self.history_turns = history_turns
        self.history_token_budget = history_token_budget
        self.outboxes: set[Outbox] = set()
        # Unbounded underneath so a reply's end marker always fits; speech jobs are bounded by ``job_limit``.
        self.jobs: asyncio.Queue[SpeechJob | ReplyEnd] = asyncio.Queue()
        self.job_limit = queue_size
        self.waiting = 0
        self.rendered: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        self.current: Reply | None = None
        self.replies: dict[str, Reply] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.last_seen = time.monotonic()
        self.voice: str | None = None

    # -- events -------------------------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        wire = event.wire()
        for box in list(self.outboxes):
            box.put(wire)

    # -- history ------------------------------------------------------------------------------------------
    def remember(self, role: str, content: str) -> None:
        """Append a message, then trim the oldest: to ``history_turns`` turns, then to ``history_token_budget``.

        The token trim never drops the newest user message (nor what follows it), and leaves the history
        starting at a user message, which some chat templates require.
        """
        self.history.append(Message(role=role, content=content))  # type: ignore[arg-type]
        keep = self.history_turns * 2
        if keep and len(self.history) > keep:
            del self.history[: len(self.history) - keep]
        if self.history_token_budget:
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

    MESSAGE_OVERHEAD_TOKENS = 4  # role and framing of one chat message, as OpenAI counts them

    @classmethod
    def estimate_tokens(cls, text: str) -> int:
        """A cheap, tokenizer-free token count: one per Hangul, kana or CJK character, one per 4 other characters.

        BPE tokenizers give English about 4 characters a token and Korean or Chinese about one character a token
        (often more), so this errs on the low side for CJK and is close for Latin text.
        """
        wide = len(CJK.findall(text))
        return wide + -(-(len(text) - wide) // 4)

    # -- replies ------------------------------------------------------------------------------------------
    def begin_reply(self, barge_in: bool) -> Reply:
        """Start a new reply; with ``barge_in`` the one still speaking is cancelled and the page told so."""
        old = self.current
        if old is not None and not old.finished:
            if barge_in:
                self.cancel_reply(old)
            elif self.waiting >= self.job_limit:
                raise QueueFull("The avatar still has too much to say; wait for it to finish or interrupt it.")
        reply = Reply(session=self.id)
        self.current = reply
        self.replies[reply.id] = reply
        return reply

    def cancel_reply(self, reply: Reply) -> None:
        if reply.cancel.is_set():
            return
        reply.cancelled_at = time.perf_counter()
        reply.cancel.set()
        reply.finished = True
        self.forget_reply(reply.id)  # its queued items are dropped below; a running render holds its own reference
        for q in (self.jobs, self.rendered):
            kept = []
            while not q.empty():
                item = q.get_nowait()
                if _reply_of(item) != reply.id:
                    kept.append(item)
                elif q is self.jobs and isinstance(item, SpeechJob):
                    self.waiting -= 1
            for item in kept:
                q.put_nowait(item)
        self.publish(SpeechCancelled(session=self.id, reply=reply.id))

    def enqueue(self, item: SpeechJob | ReplyEnd) -> None:
        if isinstance(item, SpeechJob):
            if self.waiting >= self.job_limit:
                raise QueueFull(
                    f"Session {self.id}: {self.job_limit} sentences are already waiting to be spoken; "
                    "this one was not queued."
                )
            self.waiting += 1
        self.jobs.put_nowait(item)

    async def next_job(self) -> SpeechJob | ReplyEnd:
        item = await self.jobs.get()
        if isinstance(item, SpeechJob):
            self.waiting -= 1
        return item

    def forget_reply(self, reply_id: str) -> None:
        self.replies.pop(reply_id, None)

    def busy(self) -> bool:
        """Connected, or still speaking: such a session is never reaped."""
        return bool(self.outboxes) or (self.current is not None and not self.current.finished)

    async def close(self) -> None:
        if self.current is not None:
            self.current.cancel.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _reply_of(item: Any) -> str | None:
    if isinstance(item, (SpeechJob, ReplyEnd)):
        return item.reply
    if isinstance(item, tuple) and item and isinstance(item[0], (SpeechJob, ReplyEnd)):
        return item[0].reply
    return None


class SessionManager:
    """Owns all sessions; starts each session's worker tasks through ``start_worker``."""

    def __init__(self, max_sessions: int, queue_size: int, history_turns: int, start_worker,
                 history_token_budget: int = 3000) -> None:
        self.max_sessions = max_sessions
        self.queue_size = queue_size
        self.history_turns = history_turns
        self.history_token_budget = history_token_budget
        self._start_worker = start_worker
        self.sessions: dict[str, Session] = {}

    def get_or_create(self, session_id: str) -> Session:
        check_session_id(session_id)
        s = self.sessions.get(session_id)
        if s is None:
            if len(self.sessions) >= self.max_sessions:
                raise TooManySessions(f"The server is at its limit of {self.max_sessions} sessions; try again later.")
            s = Session(session_id, self.queue_size, self.history_turns, self.history_token_budget)
            s.tasks = self._start_worker(s)
            self.sessions[session_id] = s
            log.info("session %s created", session_id)
        s.last_seen = time.monotonic()
        return s

    async def reap(self, idle_s: float) -> list[str]:
        """Close sessions nobody has used for ``idle_s`` seconds (no socket, nothing being spoken)."""
        now = time.monotonic()
        stale = [sid for sid, s in self.sessions.items() if not s.busy() and now - s.last_seen > idle_s]
        for sid in stale:
            await self.sessions.pop(sid).close()
            log.info("session %s closed after %.0f s idle", sid, idle_s)
        return stale

    def queue_depths(self) -> dict[str, int]:
        return {sid: s.waiting for sid, s in self.sessions.items()}

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions.values()), return_exceptions=True)
        self.sessions.clear()
