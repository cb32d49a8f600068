"""The LLM contract: turn a conversation into a stream of text pieces.

A base class rather than a Protocol so that the optional parts of the life cycle (``warm_up`` at start,
``aclose`` at shutdown) have no-op defaults that every backend inherits: the server calls them on any LLM
without probing for them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from avatarchat.data import Message


class LLM(ABC):
    """A reply writer; subclasses set ``name`` (the settings name, such as ``openai``) and write ``stream``."""

    name: str

    @abstractmethod
    def stream(self, history: list[Message]) -> AsyncIterator[str]:
        """Pieces of the reply as they are produced (any granularity); write it as an ``async def`` with
        ``yield``. Failures are ``BackendError``; a request the backend cannot take is ``BadRequest``."""

    def warm_up(self) -> None:
        """Blocking start-up work (load a model, check the configuration); the server runs it in a worker
        thread before it accepts requests. Configuration problems raise ``ConfigError``. Default: nothing."""

    async def aclose(self) -> None:
        """Release connections and other resources at shutdown. Default: nothing."""
