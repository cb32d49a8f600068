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
