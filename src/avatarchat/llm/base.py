"""The LLM interface: turn a conversation into a stream of text pieces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from avatarchat.data import Message


class LLM(Protocol):
    """A reply writer. ``stream`` yields pieces of the reply as they are produced (any granularity)."""

    name: str

    def stream(self, history: list[Message]) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
