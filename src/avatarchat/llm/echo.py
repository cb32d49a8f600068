"""``echo``: the avatar repeats the user's last message. Offline, instant, deterministic."""

from __future__ import annotations

from collections.abc import AsyncIterator

from avatarchat.data import Message
from avatarchat.llm.base import LLM


class EchoLLM(LLM):
    name = "echo"

    async def stream(self, history: list[Message]) -> AsyncIterator[str]:
        last = next((m.content for m in reversed(history) if m.role == "user"), "")
        # Word by word, so the sentence pipeline sees a real stream.
        words = last.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
