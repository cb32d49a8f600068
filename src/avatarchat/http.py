"""The one HTTP client every HTTP backend uses (OpenAI LLM, Google TTS, OpenAI TTS).

Why one: each backend used to build its own ``httpx.AsyncClient`` and catch httpx's exceptions its own way, so
a time-out read differently per backend and tests could only reach them through a real socket. Here httpx's
time-outs and transport failures become ``BackendError`` in one place (as httpx itself maps httpcore's
exceptions to its own), and the transport is injectable: tests pass ``httpx.MockTransport`` and drive any
backend without a server.

Pooled connections belong to the event loop that opened them, so the pooled client is kept per loop (tests,
the CLI and the server each run their own loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from avatarchat.errors import BackendError


class HttpClient:
    """POSTs and streamed requests for one backend; ``service`` starts every error message (``Google TTS``).

    ``transport`` is handed to ``httpx.AsyncClient``: None is the real network, ``httpx.MockTransport`` a test
    double. An injected transport is shared by every loop's client and closed with it.
    """

    def __init__(self, service: str, timeout_s: float, headers: dict[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self._headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers,
                                             transport=self._transport)
            self._loop = loop
        return self._client

    @contextmanager
    def _mapped(self, shown: str) -> Iterator[None]:
        """httpx's time-outs and transport failures -> ``BackendError``; ``shown`` names the server in the text."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise BackendError(f"{self.service}: no answer from {shown} within {self.timeout_s:g} s") from exc
        except httpx.ConnectError as exc:
            raise BackendError(f"{self.service}: cannot reach {shown}: unreachable ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.service}: the exchange with {shown} failed: {exc!r}") from exc

    async def post(self, url: str, shown: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST and read the whole answer; ``shown`` (default ``url``) is how errors name the server."""
        with self._mapped(shown or url):
            return await self._http().post(url, **kwargs)

    @asynccontextmanager
    async def stream(self, method: str, url: str, shown: str | None = None,
                     **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """A streamed request: failures while connecting *and* while the caller reads the body are mapped."""
        with self._mapped(shown or url):
            async with self._http().stream(method, url, **kwargs) as resp:
                yield resp

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.aclose()
