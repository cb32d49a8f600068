"""Attack: slowloris. A client that sends its request head a byte at a time, or an endless head, loses its
connection; a normal client on the same server is answered. The server runs with the uvicorn options that
``avatarchat serve`` uses (``server.protocol.uvicorn_options``)."""

from __future__ import annotations

import socket
import time

import httpx

from avatarchat.server import create_app
from avatarchat.server.serving import uvicorn_options
from tests.helpers import running


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (recv returns b"" or resets), None if it did not."""
    sock.settimeout(seconds)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_a_head_that_never_finishes_is_cut_off_and_others_are_served(settings, voices, renderer, tmp_path) -> None:
    strict = settings.model_copy(update={"data_dir": tmp_path, "head_timeout_s": 1.0})
    with running(create_app(strict, tts=voices, renderer=renderer), **uvicorn_options(strict)) as base:
        port = int(base.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200  # others are served meanwhile
        waited = _closed_within(slow, 5.0)
        assert waited is not None and waited < 3.0, waited
        slow.close()

        big = socket.create_connection(("127.0.0.1", port))
        big.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n")
        answer = big.recv(200)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        big.close()

        kept = httpx.Client()  # a kept-alive connection's next request gets the same deadline, and is fine
        assert kept.get(base + "/healthz").status_code == 200
        time.sleep(0.2)
        assert kept.get(base + "/healthz").status_code == 200
        kept.close()


def test_a_body_that_never_finishes_is_cut_off(settings, voices, renderer, tmp_path) -> None:
    """The head arrives in time, the body never does: the connection is closed after ``body_timeout_s``
    (600 such requests once held every file descriptor of the server)."""
    strict = settings.model_copy(update={"data_dir": tmp_path, "head_timeout_s": 1.0, "body_timeout_s": 1.0})
    with running(create_app(strict, tts=voices, renderer=renderer), **uvicorn_options(strict)) as base:
        port = int(base.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"session_id\": ")  # ... and never the rest
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200  # others are served meanwhile
        waited = _closed_within(slow, 5.0)
        assert waited is not None and waited < 3.0, waited
        slow.close()


def test_a_body_sent_with_its_head_does_not_count_as_head(settings, voices, renderer, tmp_path) -> None:
    """A 30 KiB JSON body in the same packet as a small head is a body (refused as a bad session, not as
    "Request head too large")."""
    strict = settings.model_copy(update={"data_dir": tmp_path})
    with running(create_app(strict, tts=voices, renderer=renderer), **uvicorn_options(strict)) as base:
        port = int(base.rsplit(":", 1)[1])
        body = b'{"session_id": "' + b"0" * 30000 + b'", "message": "hi"}'
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        conn.settimeout(10)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
        conn.close()
        assert b"Request head too large" not in answer, answer[:200]
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 404, 422), answer[:300]
