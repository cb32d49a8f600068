"""Sentence pipeline through the real server: ordering, barge-in, queueing, metrics."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from avatarchat.errors import TooManySessions
from tests.helpers import session_for
from tests.test_ws import collect, open_ws

SIX = ("One two three. Four five six! Is this seven? Eight and nine. "
       "Ten is next. Finally eleven and twelve.")


def post(server: str, session: str, message: str, **extra) -> httpx.Response:
    return httpx.post(server + "/chat", json={"session_id": session_for(server, session), "message": message, **extra},
                      timeout=60)


def test_six_sentences_arrive_as_six_clips_in_order(server: str) -> None:
    with open_ws(server, "pipe-6") as ws:
        r = post(server, "pipe-6", SIX)
        assert r.json()["sentences"] == 6
        events = collect(ws, "speech_done", timeout_s=90)
    clips = [e for e in events if e["type"] == "clip_ready"]
    assert [c["seq"] for c in clips] == list(range(6))
    assert [c["text"] for c in clips][:2] == ["One two three.", "Four five six!"]
    done = events[-1]
    assert done["clips"] == 6 and done["timings_ms"]["since_chat"] > 0
    for c in clips:
        t = c["timings_ms"]
        assert t["tts"] > 0 and t["render"] > 0 and t["encode"] > 0
        # Rendering runs a few frames ahead of the encoder, in its own thread: each within the wall time, which
        # is at most both together (plus the avatar's lookup).
        assert max(t["render"], t["encode"]) <= t["render_encode"] + 1.0
        assert t["render_encode"] <= t["render"] + t["encode"] + 20.0


def test_barge_in_cancels_the_old_reply(server: str) -> None:
    with open_ws(server, "pipe-barge") as ws:
        first = post(server, "pipe-barge", SIX).json()["reply_id"]
        events = collect(ws, "clip_ready", timeout_s=60)
        second = post(server, "pipe-barge", "Stop. New topic.").json()["reply_id"]
        later = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ev = json.loads(ws.recv(timeout=60))
            later.append((time.monotonic(), ev))
            if ev["type"] == "speech_done" and ev["reply"] == second:
                break
    kinds = [(ev["type"], ev.get("reply")) for _, ev in later]
    assert ("speech_cancelled", first) in kinds
    first_new = next(i for i, (_, ev) in enumerate(later) if ev.get("reply") == second)
    assert all(ev.get("reply") != first for _, ev in later[first_new:]), kinds
    # Once the page is told the old reply is cancelled, none of its clips may follow.
    cancelled_at = kinds.index(("speech_cancelled", first))
    assert ("clip_ready", first) not in kinds[cancelled_at:], kinds
    new_clips = [ev for _, ev in later if ev["type"] == "clip_ready" and ev["reply"] == second]
    assert [c["seq"] for c in new_clips] == [0, 1]
    assert sum(1 for e in events if e["type"] == "clip_ready" and e["reply"] == first) >= 1


def test_queue_flag_keeps_the_old_reply(server: str) -> None:
    with open_ws(server, "pipe-q") as ws:
        first = post(server, "pipe-q", "First reply here. It has two sentences.").json()["reply_id"]
        second = post(server, "pipe-q", "Second reply.", queue=True).json()["reply_id"]
        seen: list[dict] = []
        while not any(e["type"] == "speech_done" and e["reply"] == second for e in seen):
            seen += collect(ws, "speech_done", timeout_s=60)
    clips = [(e["reply"], e["seq"]) for e in seen if e["type"] == "clip_ready"]
    assert clips == [(first, 0), (first, 1), (second, 0)]
    assert not any(e["type"] == "speech_cancelled" for e in seen)


def test_sessions_do_not_see_each_other(server: str) -> None:
    with open_ws(server, "pipe-a") as a, open_ws(server, "pipe-b") as b:
        post(server, "pipe-a", "Only for A.")
        events = collect(a, "speech_done")
        assert any(e["type"] == "clip_ready" for e in events)
        b.send(json.dumps({"type": "ping"}))
        assert json.loads(b.recv(timeout=5))["type"] == "pong"  # nothing of A's reply reached B


def test_metrics_expose_stage_histograms(server: str) -> None:
    with open_ws(server, "pipe-m") as ws:
        post(server, "pipe-m", "Measure me.")
        collect(ws, "speech_done")
    text = httpx.get(server + "/metrics").text
    for name in ("avatarchat_tts_seconds_count", "avatarchat_render_seconds_count", "avatarchat_encode_seconds_count",
                 "avatarchat_chat_to_first_clip_seconds_count", "avatarchat_llm_first_token_seconds_count",
                 "avatarchat_queue_depth "):
        assert name in text, name
    count = next(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("avatarchat_tts_seconds_count"))
    assert count >= 1


def test_concurrent_chats_all_answered(server: str) -> None:
    """Several sessions at once: each gets its own text back; the server stays healthy."""
    results: dict[str, str] = {}

    def one(i: int) -> None:
        results[f"c{i}"] = post(server, f"pipe-c{i}", f"Hello number {i}.").json()["text"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {f"c{i}": f"Hello number {i}." for i in range(6)}
    assert httpx.get(server + "/healthz").json()["status"] == "ok"


def test_full_queue_reports_what_was_not_spoken(settings, tts, renderer, tmp_path) -> None:
    from avatarchat.server import create_app
    from tests.helpers import running

    small = settings.model_copy(update={"session_queue_size": 1, "data_dir": tmp_path})
    with running(create_app(small, tts=tts, renderer=renderer)) as base:
        with open_ws(base, "full") as ws:
            text = " ".join(f"Sentence {i}." for i in range(8))
            r = post(base, "full", text)
            assert r.status_code == 200 and r.json()["text"] == text  # the text reply is never lost
            events = collect(ws, "speech_done", timeout_s=60)
    errors = [e for e in events if e["type"] == "error"]
    assert errors and all(e["code"] == "queue_full" for e in errors)
    assert any("Not spoken: 'Sentence 7.'" in e["message"] for e in errors)
    clips = [e for e in events if e["type"] == "clip_ready"]
    assert len(clips) + len(errors) == 8


class _IdleLane:
    """Stands in for a speech lane: nothing speaking; records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def speaking(self) -> list:
        return []

    async def aclose(self) -> None:
        self.closed = True


async def test_idle_sessions_are_reaped_and_busy_ones_kept() -> None:
    from avatarchat.pipeline.session import Outbox, SessionManager

    mgr = SessionManager(max_sessions=2, queue_size=4, history_turns=4, make_lane=lambda s: _IdleLane())
    idle, connected = mgr.create(), mgr.create()
    connected.outboxes.add(Outbox())
    idle.last_seen -= 1000
    connected.last_seen -= 1000
    assert await mgr.reap(idle_s=100) == [idle.id]
    assert idle.lane.closed and not connected.lane.closed
    assert mgr.create().id not in (idle.id, connected.id)  # the slot came back
    await mgr.close()


async def test_a_full_table_evicts_the_longest_idle_session_but_never_a_connected_one() -> None:
    import asyncio

    from avatarchat.pipeline.session import Outbox, SessionManager

    mgr = SessionManager(max_sessions=2, queue_size=4, history_turns=4, make_lane=lambda s: _IdleLane())
    older, newer = mgr.create(), mgr.create()
    older.last_seen -= 10
    third = mgr.create()  # the table was full: the idle session unused the longest made room
    assert set(mgr.sessions) == {newer.id, third.id}
    await asyncio.sleep(0)
    assert older.lane.closed
    newer.outboxes.add(Outbox())
    third.outboxes.add(Outbox())
    with pytest.raises(TooManySessions):
        mgr.create()
    await mgr.close()


def test_punctuation_only_sentences_are_not_spoken_and_blame_no_backend(server: str) -> None:
    """"Hello there. ... !!! Bye now." splits into four sentences; "..." and "!!!" have nothing to say (Piper
    made no audio for them and the page was told a backend failed). They are left out: two clips, no error."""
    with open_ws(server, "punct") as ws:
        r = httpx.post(server + "/chat", json={"session_id": session_for(server, "punct"),
                                               "message": "Hello there. ... !!! Bye now."}, timeout=60)
        assert r.status_code == 200
        events = collect(ws, "speech_done")
    assert [e for e in events if e["type"] == "error"] == []
    assert len([e for e in events if e["type"] == "clip_ready"]) == 2
    assert events[-1]["sentences"] == 2


def test_tts_timing_counts_synthesis_not_the_wait_for_a_slot(settings, voices, renderer, tmp_path) -> None:
    """One slot, held by another session's render for 2 s: the second session's sentence waits that long
    for its TTS slot, and its clip's ``timings_ms.tts`` used to include the wait."""
    from avatarchat.server import create_app
    from tests.helpers import running
    from tests.security.test_overload import GatedRenderer

    gated = GatedRenderer(renderer)
    one_slot = settings.model_copy(update={"data_dir": tmp_path, "render_threads": 1})
    with running(create_app(one_slot, tts=voices, renderer=gated)) as base:
        with open_ws(base, "holder") as a, open_ws(base, "waiter") as b:
            httpx.post(base + "/chat", json={"session_id": session_for(base, "holder"), "message": "Stuck."},
                       timeout=60)
            deadline = time.monotonic() + 30
            while httpx.get(base + "/healthz", timeout=10).json()["pipeline"]["renders_in_flight"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            httpx.post(base + "/chat", json={"session_id": session_for(base, "waiter"), "message": "Hi there."},
                       timeout=60)
            time.sleep(2.0)  # the waiter's sentence waits for the slot meanwhile
            gated.gate.set()
            clip = next(e for e in collect(b, "clip_ready") if e["type"] == "clip_ready")
            collect(a, "speech_done")
    assert clip["timings_ms"]["tts"] < 2000, clip["timings_ms"]
