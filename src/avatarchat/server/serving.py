"""How uvicorn serves the app: its options from settings, and an HTTP protocol with deadlines for the
request head and body.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends its request line
and headers a byte at a time (slowloris) is never timed out: one such socket stayed open past 30 s, and a few
hundred of them hold the server's connections. ``HeadDeadline`` (httptools' protocol, passed to uvicorn
through its ``http`` option) gives every request head ``head_timeout_s`` to arrive and ``max_head_bytes`` to
fit, then closes the connection. A body is the same hole one step later (600 requests whose body never came
held every file descriptor), so a request's body gets ``body_timeout_s`` from the end of its head. Only the head
counts towards ``max_head_bytes``: a body sent in the same packet as its head is not a big head.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from avatarchat.settings import Settings

MAX_HEAD_BYTES = 16 * 1024


class HeadDeadline(HttpToolsProtocol):
    """httptools' HTTP/1.1 protocol, plus a time and size limit on each request head and a time limit on
    each request body."""

    head_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_head_bytes: int = MAX_HEAD_BYTES

    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _head_bytes: int = 0
    _head_tail: bytes = b""  # the last bytes seen, so a blank line split between two reads is still found

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:  # still reading a head: count its bytes, not the body's after it
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._head_tail))
            self._head_tail = seen[-3:]
            if self._head_bytes > self.max_head_bytes:
                self._disarm()
                self.send_400_response("Request head too large.")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._has_body():
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm_body()
        super().on_message_complete()

    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
                return True
        return False

    def _arm(self) -> None:
        self._disarm()
        self._head_bytes = 0
        self._head_tail = b""
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def head_deadline(settings: Settings) -> type[HeadDeadline]:
    """``HeadDeadline`` with this server's limits (a subclass per server: nothing global is changed)."""
    return type("HeadDeadline", (HeadDeadline,), {"head_timeout_s": settings.head_timeout_s,
                                                  "body_timeout_s": settings.body_timeout_s})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``avatarchat serve`` passes to uvicorn (tests start their servers with the same options)."""
    return {
        "http": head_deadline(settings),
        "timeout_graceful_shutdown": 10,  # SIGTERM never waits without bound for a streaming LLM
        "ws_max_size": settings.ws_max_frame_bytes,  # a bigger frame closes the socket (1009) unread
        "timeout_keep_alive": settings.timeout_keep_alive_s,
        # Forwarded headers are read by our own middleware, only from AVATARCHAT_TRUSTED_PROXIES (server/clients.py);
        # uvicorn's would trust 127.0.0.1 by default, letting any local client spoof X-Forwarded-For.
        "proxy_headers": False,
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), for uvicorn to serve on; binding it here lets
    ``avatarchat serve`` say which port it got."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
