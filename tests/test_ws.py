"""A real WebSocket client talks to the real server: reply text, then a clip that decodes and lip-syncs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
from websockets.sync.client import connect

from avatarchat.render import landmarks as L
from avatarchat.render.landmarks import FaceMesh
from tests.helpers import decode_clip, frame_rms, session_for


def ws_url(base: str, session: str) -> str:
    """The socket URL of the session the test calls ``session`` (a token the server issued for it)."""
    return base.replace("http://", "ws://") + f"/ws?session_id={session_for(base, session)}"


@contextmanager
def open_ws(base: str, session: str) -> Iterator:
    """Open the socket of the session the test calls ``session`` and read its opening ``session_state``."""
    with connect(ws_url(base, session)) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "session_state", first
        yield ws


def collect(ws, until: str, timeout_s: float = 60.0) -> list[dict]:
    events = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ev = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        events.append(ev)
        if ev["type"] == until:
            return events
    raise AssertionError(f"no {until} within {timeout_s}s; got {[e['type'] for e in events]}")


def test_message_becomes_lip_synced_clip(server: str, output_dir) -> None:
    with open_ws(server, "ws-1") as ws:
        r = httpx.post(server + "/chat", json={"session_id": session_for(server, "ws-1"),
                                               "message": "Hello! I am so happy to see you."},
                       timeout=30)
        assert r.status_code == 200
        events = collect(ws, "speech_done")
    types = [e["type"] for e in events]
    assert types[0] == "reply_partial" and events[0]["text"] == "Hello!", types  # words show as sentences complete
    assert types.index("reply_text") < types.index("clip_ready"), types
    assert events[types.index("reply_text")]["text"] == "Hello! I am so happy to see you."
    clips = [e for e in events if e["type"] == "clip_ready"]
    assert [c["seq"] for c in clips] == [0, 1]
    assert all(c["reply"] == r.json()["reply_id"] for c in clips)
    assert set(clips[0]["timings_ms"]) >= {"tts", "render_encode", "since_chat"}

    data = httpx.get(server + clips[1]["url"]).content
    clip = decode_clip(data)
    assert clip.fps == 25
    assert abs(clip.video_duration_s - clip.audio_duration_s) <= 1 / 25
    assert abs(clip.video_duration_s - clips[1]["duration_s"]) <= 1 / 25
    assert np.abs(clip.audio).max() > 0.05  # real speech, not silence

    rms = frame_rms(clip)
    loud, quiet = int(np.argmax(rms)), int(np.argmin(rms))
    assert rms[loud] > 10 * rms[quiet]
    with FaceMesh(static=True, max_faces=1) as mesh:
        lm = mesh.detect_one(clip.frames[quiet])
    mouth_idx = [L.MOUTH_LEFT, L.MOUTH_RIGHT, L.OUTER_LIP_TOP, L.OUTER_LIP_BOTTOM, L.CHIN, *L.CHIN_SIDES]
    x0, x1 = int(lm[mouth_idx, 0].min()), int(lm[mouth_idx, 0].max())
    y0, y1 = int(lm[[L.OUTER_LIP_TOP, *L.UPPER_LIP_PEAKS], 1].min()), int(lm[L.CHIN, 1])
    up_y1 = int(lm[L.NOSE_BRIDGE, 1])  # between the eyes
    eye_corners = L.LEFT_EYE_CORNERS + L.RIGHT_EYE_CORNERS
    up_x0, up_x1 = int(lm[eye_corners, 0].min()) - 5, int(lm[eye_corners, 0].max()) + 5
    up_y0 = int(lm[L.FOREHEAD, 1])
    f_loud = clip.frames[loud].astype(np.float32)
    f_quiet = clip.frames[quiet].astype(np.float32)
    mouth_diff = np.abs(f_loud[y0:y1, x0:x1] - f_quiet[y0:y1, x0:x1]).mean()
    upper_diff = np.abs(f_loud[up_y0:up_y1, up_x0:up_x1] - f_quiet[up_y0:up_y1, up_x0:up_x1]).mean()
    assert mouth_diff > 6.0, mouth_diff
    assert upper_diff < 1.5, upper_diff


def test_ping_pong_and_malformed_frames(server: str) -> None:
    with open_ws(server, "ws-2") as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"
        ws.send("this is not json")
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and err["code"] == "bad_frame"
        ws.send(json.dumps([1, 2, 3]))
        assert json.loads(ws.recv(timeout=5))["code"] == "bad_frame"
        ws.send(json.dumps({"type": "ping"}))  # the connection survived
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"


def test_bad_session_id_on_socket(server: str) -> None:
    with connect(server.replace("http://", "ws://") + "/ws?session_id=bad%20id") as ws:
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and "session_id" in err["message"]


def test_a_page_reconnecting_with_after_gets_the_events_it_missed_once_and_in_order(server: str) -> None:
    sid = session_for(server, "ws-resume")
    with open_ws(server, "ws-resume") as ws:
        httpx.post(server + "/chat", json={"session_id": sid, "message": "Hello there."}, timeout=30)
        last = collect(ws, "speech_done")[-1]["id"]
    # the socket is gone: this reply's events reach no page until it reconnects
    missed = httpx.post(server + "/chat", json={"session_id": sid, "message": "Are you still there?"},
                        timeout=30).json()["reply_id"]
    with connect(ws_url(server, "ws-resume") + f"&after={last}") as ws:
        state = json.loads(ws.recv(timeout=10))
        assert state["type"] == "session_state" and state["resumed"] is True
        events = collect(ws, "speech_done")
    assert events[0]["type"] == "speech_cancelled" and events[0]["reply"] != missed  # the barge-in on the first
    assert [e["type"] for e in events[1:] if e["type"] not in ("clip_ready", "reply_partial")] == [
        "reply_text", "speech_done"]
    assert all(e["reply"] == missed for e in events[1:]) and "clip_ready" in [e["type"] for e in events]
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(set(ids)) and min(ids) > tuple(map(int, last.split("-")))
    with connect(ws_url(server, "ws-resume") + "&after=..%2Fetc") as ws:  # not an event id: refused
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and err["code"] == "bad_request" and "after" in err["message"]
