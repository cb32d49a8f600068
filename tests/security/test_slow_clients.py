"""Attack: slowloris. A client that sends its request head a byte at a time, or an endless head, loses its
connection; a normal client on the same server is answered. The server runs with the uvicorn options that
``avatarchat serve`` uses (``server.protocol.uvicorn_options``)."""

from __future__ import annotations

import socket
import time

import httpx

from avatarchat.server import create_app
from avatarchat.server.protocol import uvicorn_options
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
