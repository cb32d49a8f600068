"""HTTP API against the real server: validation errors, reply text, clip served."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import decode_clip, session_for


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"session_id": "s1", "message": ""}, 422, "message is empty"),
        ({"session_id": "s1", "message": "   "}, 422, "message is empty"),
        ({"session_id": "s1", "message": "x" * 2001}, 422, "limit is 2000"),
        ({"message": "hello"}, 422, "session_id"),
        ({"session_id": "../etc", "message": "hello"}, 422, "session_id must be"),
        ({"session_id": "s1"}, 422, "message"),
    ],
)
def test_chat_rejects_bad_input_with_clear_message(server: str, body: dict, status: int, needle: str) -> None:
    r = httpx.post(server + "/chat", json=body, timeout=10)
    assert r.status_code == status
    err = r.json()["error"]
    assert needle in err["message"]
    assert err["code"] == "bad_request"


def test_chat_rejects_non_json(server: str) -> None:
    r = httpx.post(server + "/chat", content=b"{not json", headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "bad_request"


def test_chat_returns_reply_text_at_once(server: str) -> None:
    r = httpx.post(server + "/chat", json={"session_id": session_for(server, "api-1"),
                                           "message": "Good morning. Nice to meet you!"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == "Good morning. Nice to meet you!"  # the echo backend says the user's words
    assert body["sentences"] == 2
    assert len(body["reply_id"]) == 32


def test_health_and_page_and_idle(server: str) -> None:
    h = httpx.get(server + "/healthz").json()
    assert h["status"] == "ok" and h["renderer"] == "meshwarp" and h["tts"] == "piper"
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<video" in page.text
    idle = httpx.get(server + "/avatar/idle.mp4")
    clip = decode_clip(idle.content)
    assert clip.fps == 25 and len(clip.frames) >= 100


def test_unknown_or_malformed_clip_ids(server: str) -> None:
    assert httpx.get(server + "/clips/" + "0123456789abcdef" * 2 + ".mp4").status_code == 404
    assert httpx.get(server + "/clips/0123456789abcdef.mp4").status_code == 422  # 64 bits: too short to be ours
    assert httpx.get(server + "/clips/..%2f..%2fsecret.mp4").status_code in (404, 422)
    assert httpx.get(server + "/clips/NOTHEX.mp4").status_code == 422
