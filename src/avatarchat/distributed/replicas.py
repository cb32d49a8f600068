"""This node's copies of a session's replies (Redis mode): the replication side of a ``RedisLane``.

Every web node holding a session keeps the same picture of its replies, so a page on node B sees the clips of
a reply node A writes, B's barge-in cancels it, and either node's ``state()`` lets a page resume. The replies
this node writes are its own; the others' are built from their typed messages (replication.py) as they arrive
from the session's stream. The lane (redis_lane.py) owns the jobs and the Redis calls; the event stream
(event_stream.py) owns ordering and catch-up; this owns the copies and what each message does to them.
"""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.distributed.replication import Begin, Cancel, End, Message, Played, Sentence, Sync, SyncRequest
from avatarchat.pipeline.reply import Reply


class Replicas:
    def __init__(self, node: str, send: Callable[[Message], None], on_cancel: Callable[[str], None],
                 on_synced: Callable[[], None]) -> None:
        """``node``: this lane's id (sync answers are addressed to it); ``send``: tell the other nodes;
        ``on_cancel``: a reply was cancelled elsewhere (the lane drops its queued jobs); ``on_synced``: the
        other nodes told this one the replies in flight."""
        self.node = node
        self._send, self._on_cancel, self._on_synced = send, on_cancel, on_synced
        self._replies: dict[str, Reply] = {}
        self._mine: set[str] = set()  # written here: their echoed messages are not news

    def get(self, reply_id: str | None) -> Reply | None:
        return self._replies.get(reply_id) if reply_id else None

    def __contains__(self, reply_id: str) -> bool:
        return reply_id in self._replies

    def ids(self) -> set[str]:
        return set(self._replies)

    def speaking(self) -> list[Reply]:
        return [r for r in self._replies.values() if r.speaking()]

    def waiting_elsewhere(self) -> int:
        """Sentences of other nodes' replies queued and not yet announced or failed."""
        return sum(r.waiting() for rid, r in self._replies.items() if rid not in self._mine and not r.cancelled)

    def own(self, reply: Reply) -> None:
        """This node begins writing ``reply``; copies no longer speaking are let go."""
        self._prune(keep=set())
        self._replies[reply.id] = reply
        self._mine.add(reply.id)
        self._send(Begin(reply.id))

    def _prune(self, keep: set[str]) -> None:
        self._replies = {rid: r for rid, r in self._replies.items() if r.speaking() or rid in keep}
        self._mine &= set(self._replies)

    def apply(self, m: Message, writing: set[str]) -> None:
        """Another node's (or this one's echoed) message, applied to the copies. ``writing``: the replies this
        node still has jobs of (never pruned)."""
        reply = self.get(m.reply)
        if isinstance(m, Begin) and reply is None:
            # A node that only holds the socket never begins a reply: this is where its copies are pruned.
            self._prune(keep=writing)
            self._replies[m.reply] = Reply(reply_id=m.reply)
        elif isinstance(m, Sentence) and reply is not None and m.reply not in self._mine:
            reply.add_sentence(m.text)
        elif isinstance(m, End) and reply is not None and m.reply not in self._mine:
            reply.finish_writing()
        elif isinstance(m, Cancel) and reply is not None:
            reply.cancel()  # the writer's LLM loop sees this and stops
            self._on_cancel(m.reply)
        elif isinstance(m, Played) and reply is not None:
            reply.played(m.seq, m.ended)
        elif isinstance(m, SyncRequest) and m.node != self.node and self.speaking():
            self._send(Sync(m.node, [{"state": r.state(), "texts": r.texts()} for r in self.speaking()]))
        elif isinstance(m, Sync) and m.to == self.node:
            for copy in m.replies:
                self._replies.setdefault(copy["state"]["reply"], Reply.copy_of(copy["state"], copy["texts"]))
            self._on_synced()
