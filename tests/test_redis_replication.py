"""The nodes' bookkeeping messages (distributed/replication.py): each round-trips through its wire form, and
anything else (an event, a message missing a field, an unknown kind) parses to None instead of raising."""

from __future__ import annotations

import json

from avatarchat.distributed.replication import Begin, Cancel, End, Played, Sentence, Sync, SyncRequest, parse, wire


def test_every_message_round_trips_through_json_with_the_streams_extra_fields() -> None:
    for m in (Begin("r"), Sentence("r", 2, "Hello."), End("r", 3), End("r", None), Cancel("r"),
              Played("r", 1, True), SyncRequest("n1"), Sync("n1", [{"state": {"reply": "r"}, "texts": ["a"]}])):
        raw = json.loads(json.dumps({"id": "1-0", "session": "s", **wire(m)}))
        assert raw["type"].startswith("_")
        assert parse(raw) == m


def test_events_and_malformed_messages_parse_to_none() -> None:
    assert parse({"type": "clip_ready", "reply": "r", "seq": 0}) is None
    assert parse({"type": "_played", "reply": "r"}) is None  # no seq
    assert parse({"type": "_nonsense", "reply": "r"}) is None
    assert parse({"reply": "r"}) is None


def test_the_replicas_follow_another_nodes_messages_without_redis() -> None:
    from avatarchat.distributed.replicas import Replicas
    from avatarchat.distributed.replication import Begin, Cancel, End, Sentence, Sync, SyncRequest
    from avatarchat.pipeline.reply import Reply

    sent, cancelled, synced = [], [], []
    mine = Replicas("node-a", sent.append, cancelled.append, lambda: synced.append(True))
    mine.apply(Begin("r1"), writing=set())
    mine.apply(Sentence("r1", 0, "Hello there."), writing=set())
    mine.apply(End("r1", 1), writing=set())
    assert mine.get("r1").texts() == ["Hello there."] and mine.waiting_elsewhere() == 1
    mine.apply(SyncRequest("node-b"), writing=set())  # a joining node asks: it is told r1
    assert isinstance(sent[-1], Sync) and sent[-1].to == "node-b" and sent[-1].replies[0]["texts"] == ["Hello there."]
    mine.apply(Cancel("r1"), writing=set())
    assert cancelled == ["r1"] and mine.speaking() == []
    own = Reply(reply_id="r2")
    mine.own(own)  # the cancelled copy is let go; this node's own reply is announced
    assert mine.ids() == {"r2"} and isinstance(sent[-1], Begin)
    mine.apply(Sentence("r2", 0, "echo of my own"), writing={"r2"})  # its own echo is not news
    assert own.texts() == []
    joining = Replicas("node-b", sent.append, cancelled.append, lambda: synced.append(True))
    joining.apply(Sync("node-b", [{"state": Reply(reply_id="r9").state(), "texts": []}]), writing=set())
    assert "r9" in joining and synced == [True]
