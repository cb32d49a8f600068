"""Attack: sessions belong to their owner. The server issues unguessable tokens; a made-up or guessed id
opens nothing, posts nothing and creates nothing, and a flood of sockets cannot lock others out."""

from __future__ import annotations

import json
import re
import secrets

import httpx
from websockets.sync.client import connect

from tests.helpers import new_session, session_for
from tests.test_ws import collect, open_ws


def _ws(base: str, token: str) -> str:
    return base.replace("http://", "ws://") + f"/ws?session_id={token}"


def test_sessions_are_issued_by_the_server_with_unguessable_tokens(server: str) -> None:
    tokens = {new_session(server) for _ in range(20)}
    assert len(tokens) == 20
    for t in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", t), t  # 24 random bytes: 192 bits


def test_a_made_up_session_id_can_neither_chat_nor_listen(server: str) -> None:
    before = httpx.get(server + "/healthz").json()["sessions"]
    r = httpx.post(server + "/chat", json={"session_id": "my-own-id", "message": "hello"}, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session"
    with connect(_ws(server, "my-own-id")) as ws:
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and err["code"] == "unknown_session"
    assert httpx.get(server + "/healthz").json()["sessions"] == before  # nothing was created


def test_a_guessed_token_receives_nothing_of_another_session(server: str) -> None:
    owner = new_session(server)
    guess = owner[:-1] + ("A" if owner[-1] != "A" else "B")  # one character off
    with connect(_ws(server, owner)) as mine, connect(_ws(server, guess)) as theirs:
        assert json.loads(mine.recv(timeout=5))["type"] == "session_state"
        assert json.loads(theirs.recv(timeout=5))["code"] == "unknown_session"
        r = httpx.post(server + "/chat", json={"session_id": guess, "message": "Give me their clips."}, timeout=10)
        assert r.status_code == 404
        httpx.post(server + "/chat", json={"session_id": owner, "message": "Private words."}, timeout=30)
        assert any(e["type"] == "clip_ready" for e in collect(mine, "speech_done"))
    assert theirs.close_code == 4404  # the guesser's socket was closed, having received nothing else


def test_a_socket_flood_does_not_fill_the_session_table(server: str) -> None:
    before = httpx.get(server + "/healthz").json()["sessions"]
    for _ in range(300):
        with connect(_ws(server, secrets.token_urlsafe(24))) as ws:
            assert json.loads(ws.recv(timeout=5))["code"] == "unknown_session"
    assert httpx.get(server + "/healthz").json()["sessions"] == before
    token = new_session(server)  # a new user still gets in and is answered
    with connect(_ws(server, token)) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "session_state"
        r = httpx.post(server + "/chat", json={"session_id": token, "message": "Still room for me."}, timeout=30)
        assert r.status_code == 200
        assert any(e["type"] == "clip_ready" for e in collect(ws, "speech_done"))


def test_clip_urls_carry_128_random_bits(server: str) -> None:
    with open_ws(server, "clip-bits") as ws:
        httpx.post(server + "/chat", json={"session_id": session_for(server, "clip-bits"), "message": "Hi."},
                   timeout=30)
        clip = next(e for e in collect(ws, "speech_done") if e["type"] == "clip_ready")
    assert re.fullmatch(r"/clips/[0-9a-f]{32}\.mp4", clip["url"])
    assert httpx.get(server + clip["url"]).status_code == 200
