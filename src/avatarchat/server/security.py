"""The server's front door: who may talk to it, how much, and what the page may do once loaded.

Everything here wraps the app rather than living in its routes, so a new route is covered without remembering
to be: one pure-ASGI middleware checks the Host header (DNS rebinding), the Origin of sockets and of
state-changing requests (cross-site WebSocket hijacking, CSRF), the optional access key, per-client request
rates, open sockets per client, body size and the shape of JSON bodies (encoding, nesting) before FastAPI parses
anything, and adds the security headers to every response. Each refusal is the documented error envelope
``{"error": {"code", "message"}}``. A WebSocket refused before its handshake gets HTTP 403, which is all a
browser can be told at that point.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from avatarchat.errors import error_body
from avatarchat.server.access import COOKIE, cookie_token, http_error, security_router
from avatarchat.server.clients import ClientResolver
from avatarchat.server.health import DETAIL_KEY as HEALTH_DETAILS
from avatarchat.server.limits import RateLimiter, json_depth
from avatarchat.settings import Settings

log = logging.getLogger(__name__)
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' blob:; "
       "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
#: Reachable without the access key: the page must load to ask for it, and monitors must see /healthz.
OPEN_PATHS = frozenset({"/", "/healthz", "/favicon.ico", "/access"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UPLOAD_PATH = "/avatars"  # POST: an avatar upload (multipart), limited by avatar_max_upload_bytes
ANY_HOST = "*"


# ---- settings made concrete ------------------------------------------------------------------------------------

def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The host names Host and Origin may carry; ``{"*"}`` means any."""
    if settings.allowed_hosts:
        return frozenset(h.lower().strip("[]") for h in settings.allowed_hosts)
    own = {"localhost", "127.0.0.1", "::1"}
    if settings.host not in ("0.0.0.0", "::", ""):
        own.add(settings.host.lower().strip("[]"))
    return frozenset(own)


def host_part(value: str) -> str:
    """``example.com:7135`` -> ``example.com``; ``[::1]:80`` -> ``::1``; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the host and port of the ``Host`` header."""
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        host_port = urlsplit("//" + host.strip()).port
    except ValueError:  # a port that is not a number
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.hostname != host_part(host):
        return False
    return host_port is None or host_port == origin_port


# ---- the middleware ---------------------------------------------------------------------------------------------

class Refused(Exception):
    """A request turned away before the app saw it."""

    def __init__(self, status: int, code: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, tuple(headers)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _send_refusal(send: Send, refusal: Refused) -> None:
    body = json.dumps(error_body(refusal.code, refusal.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *SECURITY_HEADERS, *((k.encode(), v.encode()) for k, v in refusal.headers)]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """Pure ASGI, so it sees sockets as well as requests, and bodies before anything parses them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.hosts = allowed_hosts(settings)
        self.keys = tuple(k.get_secret_value() for k in settings.access_keys if k.get_secret_value())
        self.cookies = tuple(cookie_token(k) for k in self.keys)
        self.per_client = RateLimiter(settings.rate_per_client)
        self.per_session = RateLimiter(settings.rate_per_session)
        self.sockets: dict[str, int] = {}
        self.clients = ClientResolver(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.clients.resolve(scope)  # the real client behind a trusted proxy, for every limit below
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- checks shared by requests and sockets
    def _host_allowed(self, host: str) -> bool:
        return ANY_HOST in self.hosts or host_part(host) in self.hosts

    def _check_host(self, headers: dict[str, str]) -> None:
        if not self._host_allowed(headers.get("host", "")):
            raise Refused(400, "bad_host", "This server does not answer to that host name "
                                           "(see AVATARCHAT_ALLOWED_HOSTS).")

    def _check_origin(self, headers: dict[str, str]) -> None:
        """A browser's Origin must be the page's own: http(s), an allowed host, and the host and port the
        request came to (another app on our host, ``http://127.0.0.1:8080``, is another site). A proxy that
        passes Host without its port leaves only the host name to compare."""
        origin = headers.get("origin")
        if origin is None:  # not a browser, or a same-origin GET: nothing a foreign page could abuse
            return
        if not _same_origin(origin, headers.get("host", "")) or not self._host_allowed(urlsplit(origin).netloc):
            raise Refused(403, "bad_origin", "Requests from pages of another site are refused.")

    def _key_given(self, headers: dict[str, str], query_key: str | None) -> bool:
        given: list[str] = []
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given.append(auth[7:].strip())
        given += [v for v in (headers.get("x-access-key"), query_key) if v]
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed cookie header is just no cookie
            pass
        token = cookie[COOKIE].value if COOKIE in cookie else ""
        ok = any(hmac.compare_digest(g.encode(), k.encode()) for g in given for k in self.keys)
        return ok or any(hmac.compare_digest(token.encode(), c.encode()) for c in self.cookies if token)

    def _needs_key(self, path: str) -> bool:
        if not self.keys or path in OPEN_PATHS or path.startswith("/static/"):
            return False
        return not (path == "/metrics" and self.settings.metrics_public)

    def _check_key(self, path: str, headers: dict[str, str], query_key: str | None = None) -> None:
        if self._needs_key(path) and not self._key_given(headers, query_key):
            raise Refused(401, "access_key_required", "This server needs an access key.",
                          [("www-authenticate", 'Bearer realm="avatarchat"')])

    # -- requests
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        try:
            self._check_host(headers)
            if method in UNSAFE_METHODS:
                self._check_origin(headers)
            if path == "/metrics" and not self.settings.metrics_enabled:
                raise Refused(404, "not_found", "Metrics are turned off on this server.")
            self._check_key(path, headers)
            if path == "/healthz":  # its details (backends, workers, addresses) for whoever may read /metrics
                scope.setdefault("state", {})[HEALTH_DETAILS] = not self._needs_key("/metrics") or self._key_given(
                    headers, None)
            self._check_rate(path, scope)
            upload = path == UPLOAD_PATH and method == "POST"  # a multipart file, with its own size limit
            body = await self._read_body(headers, method, receive,
                                         self.settings.avatar_max_upload_bytes + 65536 if upload else None)
            if body and not upload:
                self._check_json(headers, body)
                self._check_session_rate(path, body)
        except Refused as refusal:
            await _send_refusal(send, refusal)
            return
        await self.app(scope, _replay(body, receive) if body is not None else receive, _with_headers(send))

    def _check_rate(self, path: str, scope: Scope) -> None:
        if path == "/healthz":
            return
        wait = self.per_client.wait_s(_client(scope))
        if wait:
            raise Refused(429, "rate_limited", f"Too many requests; try again in {math.ceil(wait)} s.",
                          [("retry-after", str(math.ceil(wait)))])

    def _check_session_rate(self, path: str, body: bytes) -> None:
        if path != "/chat" or self.settings.rate_per_session <= 0:
            return
        try:
            session = json.loads(body).get("session_id")
        except (ValueError, AttributeError, RecursionError):
            return  # the route reports what is wrong with the body
        if isinstance(session, str):
            wait = self.per_session.wait_s(session)
            if wait:
                raise Refused(429, "rate_limited", f"This session sends too many messages; try again in "
                                                   f"{math.ceil(wait)} s.", [("retry-after", str(math.ceil(wait)))])

    async def _read_body(self, headers: dict[str, str], method: str, receive: Receive,
                         limit: int | None = None) -> bytes | None:
        """The whole body (at most ``limit``, by default ``max_body_bytes``) for methods that carry one; ``None``
        for the others."""
        limit = limit or self.settings.max_body_bytes
        too_big = Refused(413, "body_too_large", f"The request body is over the limit of {limit} bytes.")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_big
        if method not in UNSAFE_METHODS:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _check_json(self, headers: dict[str, str], body: bytes) -> None:
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind and kind != "application/json" and not kind.endswith("+json"):
            raise Refused(422, "bad_content_type", "Send the body as application/json.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(422, "bad_encoding", "The request body is not valid UTF-8.") from None
        depth = self.settings.max_json_depth
        if json_depth(text) > depth:
            raise Refused(422, "too_deep", f"The JSON body nests deeper than {depth} levels.")

    # -- sockets
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        client = _client(scope)
        try:
            self._check_host(headers)
            self._check_origin(headers)
            self._check_key(scope.get("path", ""), headers, (query.get("key") or [None])[0])
            if self.sockets.get(client, 0) >= self.settings.max_connections_per_client:
                raise Refused(403, "too_many_connections", "Too many open sockets from this address.")
        except Refused:
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets HTTP 403
            return
        self.sockets[client] = self.sockets.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.sockets[client] -= 1
            if not self.sockets[client]:
                del self.sockets[client]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then passes on what comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send) -> Send:
    async def send_secure(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_secure


def secure(app: FastAPI, settings: Settings) -> None:
    """Wire this module into ``app``: the middleware, the favicon and access routes, the error envelope."""
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        log.warning("serving on %s but only %s may be named in Host: set AVATARCHAT_ALLOWED_HOSTS to the names "
                    "clients use (or *)", settings.host, ", ".join(sorted(allowed_hosts(settings))))
    app.add_middleware(SecurityMiddleware, settings=settings)
    app.include_router(security_router(settings))
    app.add_exception_handler(StarletteHTTPException, http_error)
