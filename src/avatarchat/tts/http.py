"""What the HTTP TTS backends share: a pooled client per event loop and uniform transport errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from avatarchat.errors import BackendError


class LoopClient:
    """One pooled ``httpx.AsyncClient`` per event loop (pooled connections cannot move between loops)."""

    def __init__(self, service: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self._headers = headers or {}
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers)
            self._loop = loop
        return self._client

    async def post(self, url: str, shown: str, **kwargs: Any) -> httpx.Response:
        """POST, turning time-outs and transport failures into ``BackendError``; ``shown`` names the server."""
        try:
            return await self._http().post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise BackendError(f"{self.service}: no answer from {shown} within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.service}: cannot reach {shown}: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
