"""Two web nodes in one process (each its own Redis client, session manager and lanes, as ``avatarchat serve``
wires them) against a real redis-server on a free port: a page reconnecting to the other node catches up on
what it missed, once and in order; a node whose channel drops catches up too; two nodes' turns of one session
both land in its history, and a reply interrupted from the other node is stored as what was heard; the
per-session queue and the speech backlog are the cluster's, not a node's."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from avatarchat.distributed.backplane import Backplane
from avatarchat.distributed.event_stream import EventRecorder, EventStream
from avatarchat.distributed.keys import Keys, loads
from avatarchat.errors import QueueFull, StoreUnavailable
from avatarchat.events import ReplyPartial, ReplyText
from avatarchat.metrics import Metrics
from avatarchat.pipeline.outbox import Outbox
from avatarchat.pipeline.session import INTERRUPTED, Session, SessionManager
from avatarchat.server.resume import attach
from avatarchat.services import redis_lanes
from avatarchat.settings import Settings
from tests.redis_cluster import RedisServer

pytestmark = pytest.mark.timeout(60)


class Node:
    def __init__(self, url: str, queue_size: int = 20) -> None:
        settings = Settings(_env_file=None, redis_url=url, session_queue_size=queue_size, history_turns=10,
                            max_message_chars=100, session_idle_s=60, redis_job_timeout_s=30)
        self.backplane = Backplane.connect(url, settings.session_idle_s, settings.history_turns)
        self.sessions = SessionManager(settings.max_sessions, queue_size, settings.history_turns,
                                       redis_lanes(settings, self.backplane, Metrics()),
                                       store=self.backplane.sessions)

    async def aclose(self) -> None:
        await self.sessions.close()
        await self.backplane.aclose()


@pytest.fixture
async def nodes(redis: Redis, redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(redis_server.url), Node(redis_server.url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def new_session(node: Node) -> Session:
    session = node.sessions.create()
    await node.sessions.save(session)
    await session.lane.ready()
    return session


async def received(box: Outbox, until, timeout_s: float = 5.0) -> list[dict]:
    """What the page's socket would send, until ``until(event)``; then anything more that comes in 0.2 s."""
    got: list[dict] = []
    async with asyncio.timeout(timeout_s):
        while not got or not until(got[-1]):
            got.append(await box.queue.get())
    await asyncio.sleep(0.2)
    while not box.queue.empty():
        got.append(box.queue.get_nowait())
    return got


def said(session: Session, text: str) -> None:
    session.publish(ReplyText(session=session.id, reply="r1", text=text))


async def recorded(redis: Redis, session: Session) -> list[str]:
    """The ``text`` of every event in the session's stream, oldest first."""
    return [json.loads(f[b"e"])["text"] for _, f in await redis.xrange(f"avatarchat:events:{session.id}")]


async def test_a_page_reconnecting_to_the_other_node_gets_what_it_missed_once_and_in_order(
        nodes: tuple[Node, Node], redis: Redis) -> None:
    a, b = nodes
    on_a = await new_session(a)
    page = await attach(on_a, None)
    said(on_a, "0")
    seen = await received(page, lambda e: e.get("text") == "0")
    on_a.outboxes.discard(page)  # the page's socket drops; A writes on
    for i in range(1, 6):
        said(on_a, str(i))
    async with asyncio.timeout(5):
        while len(await recorded(redis, on_a)) < 6:
            await asyncio.sleep(0.01)

    async def keep_talking() -> None:  # live events while the page reconnects: none may be lost or doubled
        for i in range(6, 30):
            said(on_a, str(i))
            await asyncio.sleep(0.002)

    talking = asyncio.create_task(keep_talking())
    on_b = await b.sessions.find(on_a.id)  # a node that never held the session
    again = await attach(on_b, seen[-1]["id"])
    await talking
    got = await received(again, lambda e: e.get("text") == "29")
    assert got[0]["type"] == "session_state" and got[0]["resumed"] is True
    assert [e["text"] for e in got[1:]] == [str(i) for i in range(1, 30)]
    ids = [tuple(map(int, e["id"].split("-"))) for e in got[1:]]
    assert ids == sorted(set(ids))


async def test_a_node_whose_channel_drops_catches_up_from_the_stream(nodes: tuple[Node, Node], redis: Redis) -> None:
    a, b = nodes
    on_a = await new_session(a)
    on_b = await b.sessions.find(on_a.id)
    page = await attach(on_b, None)
    said(on_a, "before")
    await received(page, lambda e: e.get("text") == "before")
    await redis.client_kill_filter(_type="pubsub")  # every node's channel connection drops
    for i in range(20):
        said(on_a, str(i))
    got = await received(page, lambda e: e.get("text") == "19", timeout_s=10)
    assert [e["text"] for e in got] == [str(i) for i in range(20)]


async def converse_start(node: Node, session_id: str, message: str):
    """What ``server.chat.converse`` does before the LLM: read the session, add the turn, share it."""
    session = await node.sessions.find(session_id, refresh=True)
    reply, _ = session.begin_reply(message, barge_in=False)
    await node.sessions.save(session)
    return session, reply


async def converse_end(node: Node, session: Session, reply, text: str) -> None:
    session.answer(reply, text)
    session.lane.end(reply)
    await node.sessions.save(session)


async def test_two_nodes_taking_one_sessions_messages_at_once_both_keep_their_turn(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sid = (await new_session(a)).id
    on_a, first = await converse_start(a, sid, "Question one?")
    on_b, second = await converse_start(b, sid, "Question two?")  # while A's answer is still being written
    await converse_end(b, on_b, second, "Answer two.")
    await converse_end(a, on_a, first, "Answer one.")
    third = await b.sessions.find(sid, refresh=True)
    assert [(m.role, m.content) for m in third.history] == [
        ("user", "Question one?"), ("assistant", "Answer one."),
        ("user", "Question two?"), ("assistant", "Answer two.")]


async def test_two_nodes_saving_at_the_same_moment_lose_nothing(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sid = (await new_session(a)).id
    on_a, on_b = await a.sessions.find(sid, refresh=True), await b.sessions.find(sid, refresh=True)
    ra, _ = on_a.begin_reply("From A.", barge_in=False)
    rb, _ = on_b.begin_reply("From B.", barge_in=False)
    on_a.answer(ra, "A's answer.")
    on_b.answer(rb, "B's answer.")
    on_b.voice = "piper:en_US-joe-medium"
    await asyncio.gather(a.sessions.save(on_a), b.sessions.save(on_b))
    merged = await a.sessions.find(sid, refresh=True)
    assert sorted(m.content for m in merged.history) == ["A's answer.", "B's answer.", "From A.", "From B."]
    assert merged.voice == "piper:en_US-joe-medium"  # A's save did not clear the voice B chose


async def test_the_per_session_queue_limit_counts_both_nodes_sentences(redis_server: RedisServer, redis: Redis) -> None:
    a, b = Node(redis_server.url, queue_size=3), Node(redis_server.url, queue_size=3)
    try:
        sid = (await new_session(a)).id
        on_b = await b.sessions.find(sid)
        on_a = await a.sessions.find(sid)
        first, _ = on_a.begin_reply("Tell me two things.", barge_in=False)
        for text in ("One.", "Two."):
            on_a.lane.submit(first, text, "fake:voice")  # no worker: both stay queued
        async with asyncio.timeout(5):
            while on_b.lane.waiting < 2:
                await asyncio.sleep(0.01)
        second, _ = on_b.begin_reply("And one more?", barge_in=False)
        on_b.lane.submit(second, "Three.", "fake:voice")
        with pytest.raises(QueueFull):
            on_b.lane.submit(second, "Four.", "fake:voice")
        async with asyncio.timeout(5):
            while on_a.lane.waiting < 3:
                await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            on_a.begin_reply("Anything else?", barge_in=False)  # the session's queue is full, whoever filled it
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_speech_backlog_is_the_clusters_and_forgets_cancelled_and_timed_out_sentences(
        nodes: tuple[Node, Node], redis: Redis) -> None:
    a, b = nodes
    one, two = await new_session(a), await new_session(b)
    r1, _ = one.begin_reply("Hello.", barge_in=False)
    r2, _ = two.begin_reply("Hi.", barge_in=False)
    for text in ("A.", "B."):
        one.lane.submit(r1, text, "fake:voice")
    for text in ("C.", "D.", "E."):
        two.lane.submit(r2, text, "fake:voice")
    await redis.set("avatarchat:worker:w1", json.dumps({"name": "w1", "started_at": time.time(), "clips": 10,
                                                        "failed": 0, "busy_s": 20.0, "threads": 2}))
    await redis.zadd("avatarchat:backlog", {"dead-node-reply:0": time.time() - 1})  # timed out: not counted
    async with asyncio.timeout(5):
        while (await a.backplane.admission.backlog())[0] < 5:
            await asyncio.sleep(0.01)
    assert await b.backplane.admission.backlog() == (5, 5 * 2.0 / 2)  # 2 s a sentence, 2 threads
    one.interrupt()  # barge-in: A's two queued sentences leave the backlog
    async with asyncio.timeout(5):
        while (await b.backplane.admission.jobs_waiting()) != 3:
            await asyncio.sleep(0.01)


async def test_a_reply_interrupted_from_the_other_node_is_stored_as_what_was_heard(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sid = (await new_session(a)).id
    on_a, first = await converse_start(a, sid, "Tell me a long story.")
    on_b = await b.sessions.find(sid, refresh=True)
    async with asyncio.timeout(5):
        while not on_b.lane.speaking():  # B hears of A's reply (its _begin)
            await asyncio.sleep(0.01)
    second, cancelled = on_b.begin_reply("Stop, please.", barge_in=True)
    assert [r.id for r in cancelled] == [first.id]
    on_b.lane.end(second)
    await b.sessions.save(on_b)
    async with asyncio.timeout(5):
        while not first.cancelled:  # A's writer sees the barge-in and stops; it stores no answer of its own
            await asyncio.sleep(0.01)
    on_a.lane.end(first)
    await a.sessions.save(on_a)
    again = await a.sessions.find(sid, refresh=True)
    assert [(m.role, m.content) for m in again.history] == [
        ("user", "Tell me a long story."), ("assistant", INTERRUPTED), ("user", "Stop, please.")]


async def test_a_page_ahead_of_the_node_is_trusted_only_with_an_id_the_stream_has(redis: Redis) -> None:
    recorder, stream = EventRecorder(redis, Keys(), 60), EventStream(redis, Keys(), "s1")
    ids = [await recorder.record({"type": "reply_text", "session": "s1", "reply": "r", "text": str(i)})
           for i in range(3)]
    assert await stream.between(ids[0], ids[2]) == (
        [{"id": ids[1], "type": "reply_text", "session": "s1", "reply": "r", "text": "1"},
         {"id": ids[2], "type": "reply_text", "session": "s1", "reply": "r", "text": "2"}], True)
    assert await stream.between(ids[2], ids[0]) == ([], True)  # the page saw more than this node yet: fine
    assert await stream.between("99999999999999-0", ids[2]) == ([], False)  # never an event here
    assert await stream.between("1-0", ids[2]) == ([{"id": i, "type": "reply_text", "session": "s1", "reply": "r",
                                                     "text": str(n)} for n, i in enumerate(ids)], False)


async def test_two_hundred_sessions_on_a_node_share_one_pubsub_connection_and_new_ones_still_hear(
        redis_server: RedisServer, redis: Redis) -> None:
    """Issue 17 item 4: each session's lane held a pub/sub connection of its own from redis-py's pool (100), so
    ~100 sessions left every new one deaf. Now a node subscribes once, whatever it holds."""
    a, b = Node(redis_server.url), Node(redis_server.url)
    try:
        many = [a.sessions.create() for _ in range(200)]
        await asyncio.gather(*(s.lane.ready() for s in many[-5:]))
        clients = await redis.client_list(_type="pubsub")
        assert len(clients) <= 2, len(clients)  # a's one subscription (b holds none yet)
        late = await new_session(a)
        box = Outbox()
        late.outboxes.add(box)
        said(await b.sessions.find(late.id), "heard on the 201st session")  # another node's event reaches it
        got = await received(box, lambda e: e.get("text") == "heard on the 201st session", timeout_s=5)
        assert got[-1]["text"] == "heard on the 201st session"
        await a.sessions.close()
        assert a.backplane.subscriber.channels == 0  # closed sessions take their channels with them
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_node_that_only_holds_the_socket_prunes_its_copies_of_finished_replies(
        nodes: tuple[Node, Node]) -> None:
    """Issue 17 (low): copies of other nodes' replies were pruned only when this node began one of its own."""
    a, b = nodes
    on_a = await new_session(a)
    on_b = await b.sessions.find(on_a.id)
    await on_b.lane.ready()
    ids = []
    for question in ("One?", "Two?", "Three?"):
        reply, _ = on_a.begin_reply(question, barge_in=True)  # each new one cancels the one before
        ids.append(reply.id)
        async with asyncio.timeout(5):
            while reply.id not in on_b.lane._replicas:
                await asyncio.sleep(0.02)
    assert on_b.lane._replicas.ids() == {ids[-1]}


async def test_a_cancel_sent_while_a_nodes_channel_is_down_still_reaches_its_copy(
        nodes: tuple[Node, Node], redis: Redis) -> None:
    """Issue 17 item 9: the nodes' bookkeeping travelled on the channel only, so a barge-in during a pub/sub
    blip left the other node's copy of the reply speaking for ever (never reaped; a reloaded page resumed it).
    Now it is recorded in the session's stream, which the resubscribe catches up from; a page never sees it."""
    a, b = nodes
    on_a = await new_session(a)
    on_b = await b.sessions.find(on_a.id)
    await on_b.lane.ready()
    reply, _ = on_a.begin_reply("Tell me a long story.", barge_in=True)
    async with asyncio.timeout(5):
        while not on_b.lane.speaking():
            await asyncio.sleep(0.01)
    page = await attach(on_b, None)
    await redis.client_kill_filter(_type="pubsub")  # both nodes' channels drop; B's comes back ~1 s later
    assert [r.id for r in on_a.lane.cancel_all()] == [reply.id]  # barge-in on A during the blip
    async with asyncio.timeout(10):
        while on_b.lane.speaking():
            await asyncio.sleep(0.02)
    said(on_a, "after the blip")
    got = await received(page, lambda e: e.get("text") == "after the blip")
    assert [e["type"] for e in got] == ["session_state", "speech_cancelled", "reply_text"]  # no bookkeeping
    missed, _ = await on_b.lane.between(got[1]["id"], on_b.lane.position)
    assert [e["type"] for e in missed] == ["reply_text"]


async def test_a_hung_redis_fails_chat_and_healthz_fast_instead_of_hanging(redis_server: RedisServer) -> None:
    """Issue 17 item 9: with redis-server stopped (SIGSTOP: the connection stays open, nothing answers) reading a
    session for /chat and /healthz's ping waited for the whole outage. Now each fails within the timeout."""
    node = Node(redis_server.url)
    try:
        session = await new_session(node)
        assert (await node.backplane.health())["redis"] == "ok"
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            async with asyncio.timeout(15):  # the old client: forever
                health = await node.backplane.health()
                with pytest.raises(StoreUnavailable):
                    await node.sessions.find(session.id, refresh=True)  # what /chat does first
            assert health["redis"] == "unreachable"
            assert time.monotonic() - t0 < 6.0  # two timeouts of 2 s
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        async with asyncio.timeout(10):
            while (await node.backplane.health())["redis"] != "ok":  # and back once Redis answers
                await asyncio.sleep(0.1)
    finally:
        await node.aclose()



async def test_a_message_that_is_not_an_event_leaves_the_nodes_subscription_working(
        nodes: tuple[Node, Node], redis: Redis) -> None:
    """Anything that can publish on a session's channel could send a message that does not parse; its handler's
    exception ended the node's one subscription, and no session on that node heard anything after it."""
    a, b = nodes
    on_a = await new_session(a)
    box = Outbox()
    on_a.outboxes.add(box)
    await redis.publish(f"avatarchat:events:{on_a.id}", b"not json")
    said(await b.sessions.find(on_a.id), "still heard")
    got = await received(box, lambda e: e.get("text") == "still heard")
    assert got[-1]["text"] == "still heard"
    assert (await a.backplane.health())["redis"] == "ok"


async def test_the_reply_so_far_reaches_pages_but_is_not_kept_in_redis(nodes: tuple[Node, Node], redis: Redis) -> None:
    """Issue 17 item 9: each ``reply_partial`` repeats the reply so far, so a 2000-character answer left ~35 kB
    of client-driven text in the session's stream for its whole TTL. Pages still get them live."""
    a, b = nodes
    on_a = await new_session(a)
    page = await attach(await b.sessions.find(on_a.id), None)
    sentences = [f"Sentence number {i} of a long answer." for i in range(20)]
    for n in range(1, len(sentences) + 1):
        on_a.publish(ReplyPartial(session=on_a.id, reply="r1", text=" ".join(sentences[:n])))
    said(on_a, " ".join(sentences))
    got = await received(page, lambda e: e["type"] == "reply_text")
    assert [e["type"] for e in got[1:]] == ["reply_partial"] * 20 + ["reply_text"]
    kept = [json.loads(f[b"e"])["type"] for _, f in await redis.xrange(f"avatarchat:events:{on_a.id}")]
    assert "reply_partial" not in kept and "reply_text" in kept


async def test_the_avatar_a_session_chose_on_one_node_is_its_avatar_on_the_other_and_in_its_jobs(
        nodes: tuple[Node, Node], redis: Redis) -> None:
    a, b = nodes
    sid = (await new_session(a)).id
    on_a = await a.sessions.find(sid, refresh=True)
    on_a.avatar = "grace-hopper"  # a gallery avatar (every node serves the same gallery directory)
    await a.sessions.save(on_a)
    on_b = await b.sessions.find(sid, refresh=True)
    assert on_b.avatar == "grace-hopper"
    reply, _ = on_b.begin_reply("Hello?", barge_in=False)
    on_b.lane.submit(reply, "Hello.", "piper:en_US-joe-medium", on_b.avatar)
    await asyncio.sleep(0.3)  # the lane's writes to Redis are queued
    streams = [k for k in await redis.keys("avatarchat:jobs:*") if await redis.type(k) == b"stream"]
    jobs = [loads(f[b"job"]) for key in streams for _, f in await redis.xrange(key)]
    assert any(j.get("session") == sid and j.get("avatar") == "grace-hopper" for j in jobs), jobs
    on_a.avatar = None  # back to the default
    await a.sessions.save(on_a)
    assert (await b.sessions.find(sid, refresh=True)).avatar is None
