"""Attack: exhaust the server with big, malformed or many inputs. Each limit is a setting and answers with the
error envelope (HTTP) or an ``error`` event (socket); the socket and the other sessions live on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from avatarchat.server import create_app
from avatarchat.settings import Settings
from tests.helpers import new_session, running


def _ws(base: str, token: str) -> str:
    return base.replace("http://", "ws://") + f"/ws?session_id={token}"


def _error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text
    return r.json()["error"]


@pytest.fixture(scope="module")
def strict(settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    s = settings.model_copy(update={"rate_per_session": 2, "ws_frames_per_s": 1.0, "max_connections_per_client": 2,
                                    "metrics_enabled": False, "max_body_bytes": 4096, "ws_max_frame_bytes": 1024,
                                    "data_dir": tmp_path_factory.mktemp("strict")})
    with running(create_app(s, tts=voices, renderer=renderer)) as base:
        yield base


def test_a_body_over_the_limit_is_refused_before_parsing(server: str) -> None:
    big = json.dumps({"session_id": "x", "message": "a" * 100_000})
    err = _error(httpx.post(server + "/chat", content=big, headers={"Content-Type": "application/json"}, timeout=10),
                 413, "body_too_large")
    assert "65536" in err["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed body is counted
        for _ in range(100):
            yield b" " * 1000

    _error(httpx.post(server + "/chat", content=chunks(), headers={"Content-Type": "application/json"}, timeout=10),
           413, "body_too_large")


def test_deeply_nested_json_is_a_422_not_a_crash(server: str) -> None:
    for body in ("[" * 60_000, '{"session_id": "x", "message": ' + "[" * 40 + "]" * 40 + "}"):
        _error(httpx.post(server + "/chat", content=body, headers={"Content-Type": "application/json"}, timeout=10),
               422, "too_deep")
    assert httpx.get(server + "/healthz", timeout=10).status_code == 200


def test_bad_encodings_and_content_types_get_the_envelope(server: str) -> None:
    body = b'{"session_id": "\xff\xfe", "message": "hi"}'
    _error(httpx.post(server + "/chat", content=body, headers={"Content-Type": "application/json"}, timeout=10),
           422, "bad_encoding")
    _error(httpx.post(server + "/chat", content=b"message=hi", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}), 422, "bad_content_type")
    _error(httpx.post(server + "/chat", content=b'{"session_id": ', timeout=10,
                      headers={"Content-Type": "application/json"}), 422, "bad_request")


def test_binary_and_oversized_frames_get_an_error_and_the_socket_lives_on(server: str) -> None:
    with connect(_ws(server, new_session(server))) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
        ws.send(b"\x00\x01binary")  # binary frames are microphone audio: these 8 bytes are not 30 ms of it
        assert json.loads(ws.recv(timeout=10))["code"] == "bad_audio"
        ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        assert json.loads(ws.recv(timeout=10))["code"] == "frame_too_large"
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"


def test_a_client_over_its_request_rate_gets_429_with_retry_after(settings, voices, renderer, tmp_path) -> None:
    s = settings.model_copy(update={"rate_per_client": 5, "data_dir": tmp_path})
    with running(create_app(s, tts=voices, renderer=renderer)) as base:
        codes = [httpx.get(base + "/voices", timeout=10).status_code for _ in range(5)]
        assert codes == [200] * 5
        r = httpx.get(base + "/voices", timeout=10)
        _error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200  # monitors are not limited


def test_a_session_over_its_message_rate_gets_429(strict: str) -> None:
    token = new_session(strict)
    for i in range(2):
        assert httpx.post(strict + "/chat", json={"session_id": token, "message": f"Hi {i}."},
                          timeout=60).status_code == 200
    r = httpx.post(strict + "/chat", json={"session_id": token, "message": "Hi again."}, timeout=60)
    _error(r, 429, "rate_limited")
    assert "retry-after" in r.headers
    other = new_session(strict)  # another session is not held back
    assert httpx.post(strict + "/chat", json={"session_id": other, "message": "Me too."}, timeout=60).status_code == 200


def test_frames_over_the_rate_are_dropped_with_an_error(strict: str) -> None:
    with connect(_ws(strict, new_session(strict))) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
        for _ in range(8):
            ws.send(json.dumps({"type": "ping"}))
        answers = [json.loads(ws.recv(timeout=10)) for _ in range(8)]
    kinds = [a.get("code", a["type"]) for a in answers]
    assert kinds.count("pong") >= 4 and "rate_limited" in kinds, kinds


def test_small_limits_apply_to_frames_and_bodies(strict: str) -> None:
    _error(httpx.post(strict + "/chat", json={"session_id": "x", "message": "a" * 5000}, timeout=10),
           413, "body_too_large")
    with connect(_ws(strict, new_session(strict))) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
        ws.send("x" * 2000)
        assert json.loads(ws.recv(timeout=10))["code"] == "frame_too_large"


def test_sockets_per_client_are_capped(strict: str) -> None:
    token = new_session(strict)
    with connect(_ws(strict, token)) as a, connect(_ws(strict, token)) as b:
        for ws in (a, b):
            assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
        with pytest.raises(InvalidStatus) as refused:
            with connect(_ws(strict, token)):
                pass
        assert refused.value.response.status_code == 403
    deadline = time.monotonic() + 5
    while True:  # closing frees the places (once the server has seen the close)
        try:
            with connect(_ws(strict, token)) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
            break
        except InvalidStatus:
            assert time.monotonic() < deadline, "a closed socket kept its place"
            time.sleep(0.1)


def test_metrics_can_be_turned_off(strict: str) -> None:
    _error(httpx.get(strict + "/metrics", timeout=10), 404, "not_found")


def test_a_message_limit_the_queue_cannot_speak_is_refused_at_start() -> None:
    Settings(_env_file=None)  # the defaults fit
    with pytest.raises(ValidationError, match="session_queue_size"):
        Settings(_env_file=None, max_message_chars=2000, session_queue_size=16)
