"""Tests for ``avatarchat.llm.openai.OpenAILLM`` against a real local OpenAI-compatible HTTP server.

The fake server is a FastAPI app run by uvicorn in a background thread on 127.0.0.1 (a free port). It speaks
the chat-completions wire format: Bearer auth, OpenAI-shaped error bodies, and streamed SSE chunks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from avatarchat.data import Message
from avatarchat.errors import BackendError
from avatarchat.llm.openai import OpenAILLM

API_KEY = "sk-test-good-key"
QUOTA_MODEL = "quota-model"
MALFORMED_MODEL = "malformed-model"
INSTREAM_ERROR_MODEL = "instream-error-model"
SLOW_MODEL = "slow-model"  # pauses before the final chunk
SLOW_PAUSE_S = 0.3
DRIP_MODEL = "drip-model"  # a keep-alive every 0.2 s for 8 s before the end: no read waits long, the reply does
PIECE_LEN = 7  # characters per streamed content delta
# Models whose stream carries, after two pieces, one ``data:`` line of valid JSON in the wrong shape.
WRONG_SHAPES = {
    "shape-choices-string": '{"choices": "x"}',
    "shape-array": "[1, 2]",
    "shape-string": '"error"',
    "shape-choice-null": '{"choices": [null]}',
    "shape-delta-string": '{"choices": [{"index": 0, "delta": "hi"}]}',
    "shape-content-number": '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
}
NULL_DELTA_MODEL = "null-delta-model"  # Azure-style finish chunk mid-stream: "delta": null


@dataclass
class FakeServer:
    """A running fake OpenAI server: its base URL and what it has received."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def expected_reply(last_user: str, model: str, has_system: bool) -> str:
    """The text the fake server streams back for a given request."""
    return f"You said: {last_user}. Model {model}. System prompt: {'yes' if has_system else 'no'}."


def _chunk(delta: dict[str, Any], model: str, finish: str | None = None) -> str:
    obj = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(obj)}\n\n"


def _make_app(server: FakeServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):  # noqa: ANN202 - FastAPI handler
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(
                status_code=401,
                content={
                    "error": {
                        "message": "Incorrect API key provided: sk-wr***. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        body = await request.json()
        server.requests.append(body)
        server.headers.append(dict(request.headers))
        model = body.get("model", "")
        if model == QUOTA_MODEL:
            return JSONResponse(
                status_code=429,
                content={
                    "error": {
                        "message": "You exceeded your current quota, please check your plan and billing details.",
                        "type": "insufficient_quota",
                        "param": None,
                        "code": "insufficient_quota",
                    }
                },
            )
        messages = body.get("messages", [])
        has_system = bool(messages) and messages[0].get("role") == "system"
        last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        reply = expected_reply(last_user, model, has_system)
        pieces = [reply[i : i + PIECE_LEN] for i in range(0, len(reply), PIECE_LEN)]

        async def events() -> AsyncIterator[str]:
            yield _chunk({"role": "assistant"}, model)
            yield ": keep-alive\n\n"
            for i, piece in enumerate(pieces):
                await asyncio.sleep(0.005)
                yield _chunk({"content": piece}, model)
                if i == 1:
                    if model == MALFORMED_MODEL:
                        yield 'data: {"choices": [{"delta": {"content": "oops"\n\n'
                    if model in WRONG_SHAPES:
                        yield f"data: {WRONG_SHAPES[model]}\n\n"
                    if model == NULL_DELTA_MODEL:
                        yield 'data: {"choices": [{"index": 0, "delta": null, "finish_reason": null}]}\n\n'
                    if model == INSTREAM_ERROR_MODEL:
                        err = {"error": {"message": "The server had an error while processing your request."}}
                        yield f"data: {json.dumps(err)}\n\n"
                    # Some servers send usage-only chunks with empty choices mid- or end-stream.
                    empty = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": []}
                    yield f"data: {json.dumps(empty)}\n\n"
                    yield ": keep-alive\n\n"
            if model == SLOW_MODEL:
                await asyncio.sleep(SLOW_PAUSE_S)
            if model == DRIP_MODEL:
                for _ in range(40):
                    await asyncio.sleep(0.2)
                    yield ": keep-alive\n\n"
            yield _chunk({}, model, finish="stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    """Run the fake OpenAI server under uvicorn in a thread for this module; stop it at the end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = FakeServer(base_url=f"http://127.0.0.1:{port}/v1")
    config = uvicorn.Config(_make_app(server), log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake OpenAI server did not start")
        time.sleep(0.01)
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # accepting connections
    try:
        yield server
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    """The module's fake server with its request log cleared for this test."""
    fake_server.requests.clear()
    fake_server.headers.clear()
    return fake_server


def _closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def _collect(llm: OpenAILLM, history: list[Message]) -> list[str]:
    try:
        return [piece async for piece in llm.stream(history)]
    finally:
        await llm.aclose()


HISTORY = [
    Message("user", "Hi there"),
    Message("assistant", "Hello! How can I help?"),
    Message("user", "Tell me a joke"),
]


async def test_stream_yields_several_pieces_that_join_to_the_reply(server: FakeServer) -> None:
    """The reply arrives as separate pieces, in order, with role-only/empty/keep-alive lines skipped."""
    llm = OpenAILLM(server.base_url, API_KEY, "gpt-test", system_prompt="You are a friendly avatar.")
    pieces = await _collect(llm, HISTORY)
    expected = expected_reply("Tell me a joke", "gpt-test", has_system=True)
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == expected
    assert pieces[0] == expected[:PIECE_LEN]


async def test_first_piece_arrives_before_stream_ends(server: FakeServer) -> None:
    """Pieces are yielded as they arrive, not after the whole body is read."""
    llm = OpenAILLM(server.base_url, API_KEY, SLOW_MODEL)
    gen = llm.stream([Message("user", "stream please")])
    try:
        start = time.monotonic()
        first = await anext(gen)
        t_first = time.monotonic() - start
        rest = [p async for p in gen]
        t_end = time.monotonic() - start
        assert first == expected_reply("stream please", SLOW_MODEL, has_system=False)[:PIECE_LEN]
        assert rest
        assert t_end - t_first >= SLOW_PAUSE_S * 0.8
    finally:
        await gen.aclose()
        await llm.aclose()


async def test_the_timeout_bounds_the_whole_reply_not_each_read(server: FakeServer) -> None:
    """A server that drips a keep-alive every 0.2 s never trips a per-read timeout of 1 s; the reply's
    deadline ends it (it held a reply, and its sentence slots, for as long as the server dripped)."""
    llm = OpenAILLM(server.base_url, API_KEY, DRIP_MODEL, timeout_s=1.0)
    start = time.monotonic()
    try:
        with pytest.raises(BackendError, match="1 s"):
            await _collect(llm, [Message("user", "drip")])
    finally:
        await llm.aclose()
    assert time.monotonic() - start < 4.0


async def test_request_carries_system_prompt_history_and_model(server: FakeServer) -> None:
    """The payload is: system prompt first, then the history in order, the model, and stream=true."""
    llm = OpenAILLM(server.base_url + "/", API_KEY, "my-model-7b", system_prompt="Be brief.")
    await _collect(llm, HISTORY)
    assert len(server.requests) == 1
    body = server.requests[0]
    assert body["model"] == "my-model-7b"
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_no_system_message_without_system_prompt(server: FakeServer) -> None:
    """An empty system prompt sends no system message, and the server's reply reflects that."""
    llm = OpenAILLM(server.base_url, API_KEY, "gpt-test")
    pieces = await _collect(llm, [Message("user", "Hello")])
    assert [m["role"] for m in server.requests[0]["messages"]] == ["user"]
    assert "".join(pieces) == expected_reply("Hello", "gpt-test", has_system=False)


async def test_wrong_api_key_raises_backend_error_with_server_message(server: FakeServer) -> None:
    """A 401 becomes a BackendError carrying the status and the server's own error message."""
    llm = OpenAILLM(server.base_url, "sk-wrong-key", "gpt-test")
    with pytest.raises(BackendError) as info:
        await _collect(llm, HISTORY)
    assert "Incorrect API key provided" in info.value.message
    assert "401" in info.value.message
    assert info.value.code == "backend_error"
    assert server.requests == []


async def test_quota_exceeded_raises_backend_error(server: FakeServer) -> None:
    """A 429 insufficient_quota becomes a BackendError that mentions the quota."""
    llm = OpenAILLM(server.base_url, API_KEY, QUOTA_MODEL)
    with pytest.raises(BackendError) as info:
        await _collect(llm, HISTORY)
    assert "quota" in str(info.value).lower()
    assert "429" in str(info.value)


async def test_unreachable_endpoint_raises_backend_error() -> None:
    """A closed port becomes a BackendError, not a raw httpx exception."""
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = OpenAILLM(url, API_KEY, "gpt-test", timeout_s=2.0)
    with pytest.raises(BackendError) as info:
        await _collect(llm, HISTORY)
    assert "unreachable" in str(info.value)


async def _until_error(llm: OpenAILLM) -> tuple[list[str], BackendError]:
    """The pieces a stream delivered before it failed, and the BackendError it failed with."""
    received: list[str] = []
    with pytest.raises(BackendError) as info:
        try:
            async for piece in llm.stream(HISTORY):
                received.append(piece)
        finally:
            await llm.aclose()
    return received, info.value


async def test_malformed_data_line_raises_backend_error(server: FakeServer) -> None:
    """A ``data:`` line that is not JSON aborts the stream with a BackendError."""
    received, error = await _until_error(OpenAILLM(server.base_url, API_KEY, MALFORMED_MODEL))
    assert "malformed" in str(error).lower()
    assert len(received) == 2  # the pieces before the bad line were delivered


async def test_error_object_in_stream_raises_backend_error(server: FakeServer) -> None:
    """An ``{"error": ...}`` event mid-stream aborts with a BackendError carrying its message."""
    llm = OpenAILLM(server.base_url, API_KEY, INSTREAM_ERROR_MODEL)
    with pytest.raises(BackendError) as info:
        await _collect(llm, HISTORY)
    assert "The server had an error while processing your request." in str(info.value)


@pytest.mark.parametrize("model", sorted(WRONG_SHAPES))
async def test_valid_json_of_the_wrong_shape_raises_backend_error(server: FakeServer, model: str) -> None:
    """A chunk that parses but is not a chunk (an array, a string, choices not a list, a non-object delta, numeric
    content) aborts with a BackendError that names the problem, never a TypeError or AttributeError."""
    received, error = await _until_error(OpenAILLM(server.base_url, API_KEY, model))
    assert "wrong shape" in error.message
    assert WRONG_SHAPES[model][:20] in error.message  # the log shows the offending line
    assert WRONG_SHAPES[model][:20] not in error.public  # clients get our generic text only
    assert received == [expected_reply("Tell me a joke", model, has_system=False)[i : i + PIECE_LEN]
                        for i in (0, PIECE_LEN)]


async def test_a_null_delta_is_read_as_an_empty_one(server: FakeServer) -> None:
    """Some servers (Azure) send ``"delta": null``: it carries no text and the stream goes on to the end."""
    llm = OpenAILLM(server.base_url, API_KEY, NULL_DELTA_MODEL)
    pieces = await _collect(llm, [Message("user", "Hello")])
    assert "".join(pieces) == expected_reply("Hello", NULL_DELTA_MODEL, has_system=False)
