"""``openai``: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Ollama, vLLM, llama.cpp), streamed.

Speaks the wire format directly with httpx (server-sent events, ``data: {...}`` lines, ``data: [DONE]``),
so no vendor SDK is needed and any compatible server works.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx

from avatarchat.data import Message
from avatarchat.errors import BackendError
from avatarchat.http import HttpClient
from avatarchat.llm.base import LLM
from avatarchat.openai_errors import openai_error_text

SERVICE = "LLM endpoint"


class OpenAILLM(LLM):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        system_prompt: str = "",
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``timeout_s`` bounds the whole reply, from the request to the stream's last line (a server that
        drips keep-alives never trips a per-read timeout). ``transport`` replaces the network (tests pass
        ``httpx.MockTransport``)."""
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._system = system_prompt
        self._timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = HttpClient(SERVICE, timeout_s, headers, transport)

    def _payload(self, history: list[Message]) -> dict:
        msgs = [{"role": "system", "content": self._system}] if self._system else []
        msgs += [{"role": m.role, "content": m.content} for m in history]
        return {"model": self._model, "messages": msgs, "stream": True}

    async def stream(self, history: list[Message]) -> AsyncIterator[str]:
        deadline = time.monotonic() + self._timeout_s
        async with self._client.stream("POST", self._url, json=self._payload(history)) as resp:
            if resp.status_code != 200:
                body = await resp.aread()
                raise BackendError(f"{SERVICE} {self._url} answered "
                                   f"{openai_error_text(body, resp.status_code, resp.reason_phrase)}")
            lines = resp.aiter_lines()
            while True:
                try:
                    line = await asyncio.wait_for(anext(lines), max(0.0, deadline - time.monotonic()))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise BackendError(f"{SERVICE}: the reply took longer than {self._timeout_s:g} s") from None
                piece = _parse_sse_line(line)
                if piece is None:
                    continue
                if piece is _DONE:
                    return
                yield piece

    async def aclose(self) -> None:
        await self._client.aclose()


_DONE = object()


def _parse_sse_line(line: str):
    """One SSE line -> text piece, ``_DONE``, or None (comments, keep-alives, role-only deltas).

    A line that is not the chunk shape (JSON that is not an object, ``choices`` that is not a list, a choice or
    delta that is not an object, content that is not a string) is a ``BackendError`` naming what was wrong, not
    a TypeError or AttributeError from deep inside the stream. A ``null`` delta is read as an empty one: Azure
    and some proxies send it on the finish chunk.
    """
    line = line.strip()
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BackendError(f"LLM endpoint sent malformed JSON in its stream: {data[:200]!r}") from exc
    if isinstance(obj, dict) and "error" in obj:
        raise BackendError(f"LLM endpoint reported an error: {openai_error_text(obj)}")
    return _chunk_content(obj, data)


def _chunk_content(obj: object, data: str) -> str | None:
    """The text of a parsed ``chat.completion.chunk``; None when it carries none (usage-only, role-only, finish)."""
    def bad(what: str) -> BackendError:
        return BackendError(f"LLM endpoint sent a stream chunk of the wrong shape ({what}): {data[:200]!r}")

    if not isinstance(obj, dict):
        raise bad(f"the chunk is {_kind(obj)}, not an object")
    choices = obj.get("choices")
    if choices is None or choices == []:
        return None
    if not isinstance(choices, list):
        raise bad(f"'choices' is {_kind(choices)}, not an array")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise bad(f"a choice is {_kind(choice)}, not an object")
    delta = choice.get("delta")
    if delta is None:
        return None
    if not isinstance(delta, dict):
        raise bad(f"'delta' is {_kind(delta)}, not an object")
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise bad(f"'content' is {_kind(content)}, not a string")
    return content or None


def _kind(value: object) -> str:
    """A JSON value's type in JSON's words, for error messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
             dict: "an object"}
    return names.get(type(value), type(value).__name__)

