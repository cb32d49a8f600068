"""A session's speech lane on a web node in Redis mode: sentences go to workers, events come back.

``submit`` queues a job for the workers, due when its clip must start playing (``JobQueue``: earliest
deadline first across all sessions and nodes); the session's events (a Redis stream, with a channel for
speed: see event_stream.py) bring back what the workers announce and what the other nodes holding the
session did, and let a page reconnecting here catch up (the lane is the session's ``EventLog``). The nodes'
own bookkeeping (typed messages: distributed/replication.py) is recorded in the same stream (a node that was
away catches up on it too) and never shown to a page; this node's copies of the replies are kept by
``Replicas`` (replicas.py). Three owners, then: the lane (jobs, Redis calls), the event stream (order and
catch-up), the replicas (what each node knows of the replies).

The node that wrote a reply (its owner) sends ``speech_done`` once every sentence is announced or failed,
and turns a sentence nobody rendered within ``job_timeout_s`` into an ``error`` event. Redis calls happen in
one sender task, in order; the lane's methods stay synchronous, as the ``Lane`` protocol wants.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from avatarchat.distributed.event_stream import EventRecorder, EventStream
from avatarchat.distributed.jobqueue import JobQueue
from avatarchat.distributed.keys import Keys, dumps
from avatarchat.distributed.outage import reachable
from avatarchat.distributed.replicas import Replicas
from avatarchat.distributed.replication import (
    EPHEMERAL,
    Cancel,
    End,
    Message,
    Played,
    Sentence,
    SyncRequest,
    parse,
    wire,
)
from avatarchat.distributed.subscriber import Subscriber
from avatarchat.errors import QueueFull
from avatarchat.events import ErrorEvent, Event, ReplyPartial, SpeechCancelled, SpeechDone
from avatarchat.metrics import Metrics
from avatarchat.pipeline.eventlog import START
from avatarchat.pipeline.reply import LATE_S, Reply, new_id

log = logging.getLogger(__name__)
RETRY_S = 1.0
SYNC_S = 0.2  # how long a node joining a session waits for the others to tell it the replies in flight
Op = Callable[[Redis], Awaitable[Any]]


class RedisLane:
    def __init__(self, session_id: str, redis: Redis, keys: Keys, deliver: Callable[[dict], None],
                 queue_size: int, job_timeout_s: float, metrics: Metrics, subscriber: Subscriber,
                 events_ttl_s: float = 900.0) -> None:
        """``events_ttl_s``: how long the session's event stream outlives its last event; ``subscriber``: the
        process's one pub/sub connection (distributed/subscriber.py), where this lane adds its channel."""
        self.session_id = session_id
        self._subscriber = subscriber
        self._redis, self._keys, self._deliver = redis, keys, deliver
        self._jobs = JobQueue(redis, keys)
        self._limit, self._timeout_s, self._metrics = queue_size, job_timeout_s, metrics
        self._owned: dict[str, dict[int, float]] = {}  # replies written here: seq -> queued at (monotonic)
        self._done_sent: set[str] = set()
        self._ops: asyncio.Queue[Op] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel = keys.events(session_id)
        self._recorder = EventRecorder(redis, keys, events_ttl_s)
        self._stream = EventStream(redis, keys, session_id)
        self._subscribed = asyncio.Event()
        self._synced = asyncio.Event()  # heard the other nodes' replies of this session (or waited SYNC_S)
        self._replicas = Replicas(new_id(), self._replicate, self._cancelled_elsewhere, self._synced.set)

    # -- the Lane protocol -------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(), name=f"redis-send-{self.session_id[:6]}"),
                       asyncio.create_task(self._listen(), name=f"redis-listen-{self.session_id[:6]}"),
                       asyncio.create_task(self._watch(), name=f"redis-watch-{self.session_id[:6]}")]

    async def ready(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded: Redis may be down) until this node hears the session's channel and knows the replies
        other nodes are still speaking (so a page reconnecting here resumes them)."""
        try:
            await asyncio.wait_for(asyncio.gather(self._subscribed.wait(), self._synced.wait()), timeout_s)
        except TimeoutError:
            log.warning("session %s: not yet subscribed to its Redis events", self.session_id[:6])

    @property
    def waiting(self) -> int:
        """The session's sentences queued and not yet announced or failed, whichever node queued them (each
        node holding the session hears the others' ``_sentence``), so the per-session limit is cluster-wide."""
        return sum(len(seqs) for seqs in self._owned.values()) + self._replicas.waiting_elsewhere()

    def has_room(self) -> bool:
        return self.waiting < self._limit

    def begin(self, reply: Reply) -> None:
        self._replicas.own(reply)
        self._done_sent &= self._replicas.ids()
        self._owned[reply.id] = {}

    def submit(self, reply: Reply, text: str, voice: str, avatar: str | None = None) -> int:
        seq = reply.add_sentence(text)
        self._replicate(Sentence(reply.id, seq, text))
        if not self.has_room():
            reply.fail(seq)
            raise QueueFull(f"{self._limit} sentences are already waiting to be spoken; this one was not queued.")
        self._owned.setdefault(reply.id, {})[seq] = time.monotonic()
        due = reply.due(seq) - time.monotonic() + time.time()  # wall clock: workers on other machines compare it
        job = {"id": new_id(), "session": self.session_id, "reply": reply.id, "seq": seq, "text": text,
               "voice": voice, "avatar": avatar or "", "due": due, "queued_at": time.time()}
        self._op(lambda _: self._jobs.add(job, due))
        deadline = time.time() + self._timeout_s  # in the cluster's backlog until announced (or timed out)
        self._op(lambda r: r.zadd(self._keys.backlog, {f"{reply.id}:{seq}": deadline}))
        return seq

    def end(self, reply: Reply) -> None:
        reply.finish_writing()
        self._replicate(End(reply.id, reply.sentences))
        self._check_done(reply)

    def speaking(self) -> list[Reply]:
        return self._replicas.speaking()

    def cancel_all(self) -> list[Reply]:
        """Barge-in, whichever node wrote the replies: queued jobs are skipped (the cancel key), running
        renders stop (the cancel channel), the writing node's LLM stream stops (the ``_cancel`` message)."""
        cancelled = [r for r in self.speaking() if r.cancel()]
        for r in cancelled:
            self._cancel_everywhere(r.id)
        return cancelled

    def _cancel_everywhere(self, rid: str) -> None:
        self._unqueue(rid, self._owned.pop(rid, {}))
        self._op(lambda c: c.set(self._keys.cancel(rid), b"1", ex=600))
        self._op(lambda c: c.publish(self._keys.cancel_channel, rid.encode()))
        self._replicate(Cancel(rid))
        self.publish(SpeechCancelled(session=self.session_id, reply=rid))

    def report(self, reply_id: str, seq: int, ended: bool) -> None:
        self._replicate(Played(reply_id, seq, ended))

    def state(self) -> list[dict]:
        return [r.state() for r in self.speaking()]

    async def aclose(self, flush_s: float = 1.0) -> None:
        """Replies this node is still writing are cancelled everywhere (nobody else would ever finish them),
        with a bounded wait for Redis to hear it."""
        for rid in list(self._owned):
            reply = self._replicas.get(rid)
            if reply is not None and reply.cancel():
                self._cancel_everywhere(rid)
        try:
            await asyncio.wait_for(self._ops.join(), flush_s)
        except TimeoutError:
            log.warning("session %s: Redis did not hear the last %d messages", self.session_id[:6], self._ops.qsize())
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stream.detach(self._subscriber)

    def _unqueue(self, rid: str, seqs: Iterable[int]) -> None:
        """Out of the cluster's backlog: announced, failed, timed out or cancelled."""
        members = [f"{rid}:{seq}" for seq in seqs]
        if members:
            self._op(lambda r: r.zrem(self._keys.backlog, *members))

    # -- the EventLog protocol: what a page reconnecting here missed -----------------------------------------
    @property
    def position(self) -> str:
        return self._stream.position or START

    async def between(self, after: str, upto: str) -> tuple[list[dict], bool]:
        return await reachable(self._stream.between(after, upto))

    # -- out: one ordered stream of Redis calls ------------------------------------------------------------
    def publish(self, event: Event) -> None:
        """The session's ``relay``: recorded in its stream; every node holding it (this one too) delivers it.
        ``reply_partial`` (the reply so far, again at each sentence: ~30 kB of client-driven text for a 2000
        character answer) is only published: a page catching up gets the ``reply_text`` or the live reply's
        text in ``session_state`` instead, and Redis keeps no quadratic copy of it for the stream's TTL."""
        wire = event.wire()
        if isinstance(event, ReplyPartial):
            self._send_raw(dumps(wire))
        else:
            self._op(lambda r: self._recorder.record(wire))

    def _replicate(self, message: Message) -> None:
        """Tell the other nodes holding the session (replication.py). The replies' messages are recorded in the
        session's stream like events, so a node whose channel dropped catches up on them (a cancel missed in a
        blip left that node's copy speaking for ever); ``SyncRequest`` and ``Sync`` are only published."""
        raw = wire(message)
        if isinstance(message, EPHEMERAL):
            self._send_raw(dumps(raw))
        else:
            self._op(lambda r: self._recorder.record({**raw, "session": self.session_id}))

    def _send_raw(self, raw: bytes) -> None:
        self._op(lambda r: r.publish(self._channel, raw))

    def _op(self, op: Op) -> None:
        self._ops.put_nowait(op)

    async def _send(self) -> None:
        while True:
            op = await self._ops.get()
            while True:
                try:
                    await op(self._redis)
                    self._ops.task_done()
                    break
                except RedisError as exc:  # Redis restarting: keep the order, try again
                    log.warning("session %s: Redis unreachable (%s); retrying in %.0f s", self.session_id[:6],
                                exc, RETRY_S)
                    await asyncio.sleep(RETRY_S)

    # -- in: the session's stream and channel ----------------------------------------------------------------
    async def _listen(self) -> None:
        while True:
            try:
                await self._stream.attach(self._subscriber, self._on, self._joined, self._lost)
                return
            except (RedisError, OSError) as exc:
                self._lost(exc)
                await asyncio.sleep(RETRY_S)

    def _joined(self) -> None:
        self._subscribed.set()
        if not self._synced.is_set():
            self._replicate(SyncRequest(self._replicas.node))
            asyncio.get_running_loop().call_later(SYNC_S, self._synced.set)

    def _lost(self, exc: BaseException) -> None:
        self._subscribed.clear()
        log.warning("session %s: lost the Redis events channel (%s); resubscribing in %.0f s",
                    self.session_id[:6], exc, RETRY_S)

    def _on(self, msg: dict[str, Any]) -> None:
        if str(msg.get("type", "")).startswith("_"):
            m = parse(msg)
            if m is not None:
                self._replicas.apply(m, writing=set(self._owned))
            return
        rid = msg.get("reply")
        self._event(msg, self._replicas.get(rid) if isinstance(rid, str) else None)

    def _cancelled_elsewhere(self, rid: str) -> None:
        """A barge-in on another node: this node's queued jobs of the reply leave the backlog."""
        self._unqueue(rid, self._owned.pop(rid, {}))

    def _event(self, msg: dict[str, Any], reply: Reply | None) -> None:
        kind = msg["type"]
        if reply is not None and kind == "clip_ready":
            seq = msg["seq"]
            state = reply.state()
            if reply.cancelled or seq in state["failed"] or any(c["seq"] == seq for c in state["clips"]):
                return  # cancelled, timed out, or already announced: never shown twice
            late_s = reply.announce(seq, msg, msg["duration_s"])
            if late_s > LATE_S and reply.id in self._owned:  # counted once, by the node that took the /chat
                self._metrics.late_clips.observe(late_s)
            self._settled(reply, seq, msg)
        elif reply is not None and kind == "error" and msg.get("seq") is not None:
            reply.fail(msg["seq"])
            self._settled(reply, msg["seq"], msg)
        elif reply is not None and kind == "speech_done":
            reply.finish_rendering()
        self._deliver(msg)

    def _settled(self, reply: Reply, seq: int, msg: dict[str, Any]) -> None:
        owned = self._owned.get(reply.id)
        if owned is None:
            return
        if owned.pop(seq, None) is not None:
            self._unqueue(reply.id, [seq])
        if msg["type"] == "clip_ready":
            self._metrics.clips.inc()
            sent = msg.get("timings_ms", {}).get("published_at")
            if sent is not None:
                hop = msg["timings_ms"].get("claim_wait_ms", 0.0) + msg["timings_ms"].get("store_ms", 0.0)
                self._metrics.redis_hop.observe((hop + max(0.0, time.time() * 1000 - sent)) / 1000)
        self._check_done(reply)

    def _check_done(self, reply: Reply) -> None:
        """The owner says ``speech_done`` once, after every sentence is announced or failed."""
        owned = self._owned.get(reply.id)
        if owned is None or owned or reply.id in self._done_sent or reply.cancelled:
            return
        st = reply.state()
        if st["sentences"] is None or len(st["clips"]) + len(st["failed"]) < st["sentences"]:
            return
        self._done_sent.add(reply.id)
        self._owned.pop(reply.id, None)
        self.publish(SpeechDone(session=self.session_id, reply=reply.id, clips=len(st["clips"]),
                                sentences=st["sentences"], timings_ms={"since_chat": reply.ms_since_start()}))

    async def _watch(self) -> None:
        """A sentence queued ``job_timeout_s`` ago with no clip: no worker took it (or every one died)."""
        while True:
            await asyncio.sleep(min(1.0, self._timeout_s / 4))
            now = time.monotonic()
            for rid, seqs in list(self._owned.items()):
                for seq, queued in list(seqs.items()):
                    if now - queued > self._timeout_s:
                        seqs.pop(seq)
                        self._unqueue(rid, [seq])
                        self._metrics.errors.labels(code="no_worker").inc()
                        self.publish(ErrorEvent(session=self.session_id, reply=rid, seq=seq, code="no_worker",
                                                message=f"No speech worker rendered sentence {seq + 1} within "
                                                        f"{self._timeout_s:.0f} s."))
