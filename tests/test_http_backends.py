"""The HTTP backends (OpenAI LLM, Google TTS, OpenAI TTS) driven through ``httpx.MockTransport``, no socket.

These pin what ``avatarchat.http.HttpClient`` and ``avatarchat.openai_errors`` promise every backend: the
vendor's error envelope becomes one readable log line, and time-outs and transport failures (while connecting
or in the middle of a streamed body) become ``BackendError``, never a raw httpx exception. The real-server
tests (test_llm_openai.py, test_tts_cloud.py) cover the same backends over loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable

import httpx
import numpy as np
import pytest

from avatarchat.data import Message
from avatarchat.errors import BackendError
from avatarchat.http import HttpClient
from avatarchat.llm.openai import OpenAILLM
from avatarchat.openai_errors import openai_error_text
from avatarchat.tts.google import GoogleTTS
from avatarchat.tts.openai_tts import OpenAITTS
from tests.helpers import wav_bytes

Handler = Callable[[httpx.Request], httpx.Response]
OPENAI_401 = {"error": {"message": "Incorrect API key provided: sk-wr***.", "type": "invalid_request_error",
                        "param": None, "code": "invalid_api_key"}}
GOOGLE_401 = {"error": {"code": 401, "status": "UNAUTHENTICATED",
                        "message": "Request had invalid authentication credentials."}}


def tone_wav(rate: int = 16000, seconds: float = 0.25) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return wav_bytes(8000 * np.sin(2 * np.pi * 220 * t), rate)


def sse(*pieces: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def timing_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def refusing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def llm(handler: Handler, seen: list[httpx.Request] | None = None) -> OpenAILLM:
    def record(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)

    return OpenAILLM("https://llm.test/v1", "sk-good", "gpt-test", system_prompt="Be brief.", timeout_s=5,
                     transport=httpx.MockTransport(record))


async def collect(model: OpenAILLM) -> list[str]:
    try:
        return [p async for p in model.stream([Message("user", "Hi")])]
    finally:
        await model.aclose()


# -- OpenAI LLM ----------------------------------------------------------------------------------------------------
async def test_llm_streams_the_pieces_and_sends_key_and_payload() -> None:
    seen: list[httpx.Request] = []
    pieces = await collect(llm(lambda r: httpx.Response(200, content=sse("Hel", "lo", "!")), seen))
    assert pieces == ["Hel", "lo", "!"]
    (request,) = seen
    assert str(request.url) == "https://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-good"
    assert json.loads(request.content)["messages"] == [{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Hi"}]


async def test_llm_401_names_status_kind_message_and_the_key_setting() -> None:
    with pytest.raises(BackendError) as info:
        await collect(llm(lambda r: httpx.Response(401, json=OPENAI_401)))
    assert info.value.message == ("LLM endpoint https://llm.test/v1/chat/completions answered 401 invalid_api_key: "
                                  "Incorrect API key provided: sk-wr***. (check AVATARCHAT_OPENAI_API_KEY)")


async def test_llm_timeout_and_refused_connection_are_backend_errors() -> None:
    with pytest.raises(BackendError, match=r"^LLM endpoint: no answer from https://llm.test/\S+ within 5 s$"):
        await collect(llm(timing_out))
    with pytest.raises(BackendError, match=r"^LLM endpoint: cannot reach https://llm.test/\S+: unreachable"):
        await collect(llm(refusing))


async def test_llm_failure_in_the_middle_of_the_stream_is_a_backend_error() -> None:
    """A read time-out after the first pieces (raised while the caller iterates the body) is mapped too."""
    async def body() -> AsyncIterator[bytes]:
        yield sse("one", " two")[: -len(b"data: [DONE]\n\n")]
        raise httpx.ReadTimeout("timed out")

    received: list[str] = []
    model = llm(lambda r: httpx.Response(200, content=body()))
    with pytest.raises(BackendError, match="no answer from .* within 5 s"):
        try:
            async for piece in model.stream([Message("user", "Hi")]):
                received.append(piece)
        finally:
            await model.aclose()
    assert received == ["one", " two"]


# -- Google TTS ----------------------------------------------------------------------------------------------------
def google(handler: Handler) -> GoogleTTS:
    return GoogleTTS("AIza-test-key", "https://tts.test", timeout_s=3, transport=httpx.MockTransport(handler))


async def test_google_speaks_and_keeps_the_key_out_of_the_url() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"audioContent": base64.b64encode(tone_wav(16000)).decode()})

    tts = google(answer)
    speech = await tts.synthesize("안녕하세요.")
    await tts.aclose()
    assert speech.sample_rate == 16000 and len(speech.pcm) == 4000
    assert str(seen[0].url) == "https://tts.test/v1/text:synthesize"
    assert seen[0].headers["x-goog-api-key"] == "AIza-test-key"


async def test_google_401_and_timeout() -> None:
    with pytest.raises(BackendError) as info:
        await google(lambda r: httpx.Response(401, json=GOOGLE_401)).synthesize("hi")
    assert info.value.message == ("Google TTS: 401 UNAUTHENTICATED: Request had invalid authentication "
                                  "credentials. (check AVATARCHAT_GOOGLE_TTS_API_KEY)")
    with pytest.raises(BackendError, match=r"^Google TTS: no answer from https://tts.test within 3 s$"):
        await google(timing_out).synthesize("hi")


# -- OpenAI TTS ----------------------------------------------------------------------------------------------------
def openai_tts(handler: Handler) -> OpenAITTS:
    return OpenAITTS("https://api.test/v1", "sk-good", timeout_s=2, transport=httpx.MockTransport(handler))


async def test_openai_tts_speaks() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=tone_wav(24000))

    speech = await openai_tts(answer).synthesize("Hello.", voice="nova")
    assert speech.sample_rate == 24000 and len(speech.pcm) == 6000
    assert seen[0].headers["authorization"] == "Bearer sk-good"
    assert json.loads(seen[0].content) == {"model": "gpt-4o-mini-tts", "input": "Hello.", "voice": "nova",
                                           "response_format": "wav"}


async def test_openai_tts_401_timeout_and_refusal() -> None:
    with pytest.raises(BackendError) as info:
        await openai_tts(lambda r: httpx.Response(401, json=OPENAI_401)).synthesize("Hello.")
    assert info.value.message == ("OpenAI TTS: 401 invalid_api_key: Incorrect API key provided: sk-wr***. "
                                  "(check AVATARCHAT_OPENAI_API_KEY)")
    assert "sk-wr" not in info.value.public  # the vendor's text stays in the log
    with pytest.raises(BackendError, match=r"^OpenAI TTS: no answer from https://api.test/v1/audio/speech within 2 s"):
        await openai_tts(timing_out).synthesize("Hello.")
    with pytest.raises(BackendError, match=r"^OpenAI TTS: cannot reach https://api.test/v1/audio/speech"):
        await openai_tts(refusing).synthesize("Hello.")


# -- the shared pieces -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "status", "reason", "expected"), [
    (OPENAI_401, 401, "Unauthorized",
     "401 invalid_api_key: Incorrect API key provided: sk-wr***. (check AVATARCHAT_OPENAI_API_KEY)"),
    ({"error": {"message": "Rate limit reached", "type": "requests"}}, 429, "", "429 requests: Rate limit reached"),
    (b"<html>Bad gateway</html>", 502, "Bad Gateway", "502 Bad Gateway: <html>Bad gateway</html>"),
    ('{"error": "model \'x\' not found"}', 404, "Not Found", "404: model 'x' not found"),  # Ollama's bare string
    ({"error": {"message": "The server had an error."}}, None, "", "The server had an error."),  # in a stream
    ({"error": {"code": 5}}, None, "", '{"error": {"code": 5}}'),  # no message: quoted as it came
])
def test_openai_error_text(body: object, status: int | None, reason: str, expected: str) -> None:
    assert openai_error_text(body, status, reason) == expected  # type: ignore[arg-type]


def test_one_client_per_event_loop_on_the_injected_transport() -> None:
    """Each loop gets its own pooled client (pools cannot move between loops), all on the injected transport."""
    calls: list[str] = []
    client = HttpClient("Test", 1.0, {"x-test": "1"}, httpx.MockTransport(
        lambda r: calls.append(r.headers["x-test"]) or httpx.Response(204)))

    async def once() -> int:
        return (await client.post("https://x.test/")).status_code

    assert asyncio.run(once()) == 204
    first = client._client
    assert asyncio.run(once()) == 204
    assert client._client is not first and calls == ["1", "1"]
    asyncio.run(client.aclose())
    assert client._client is None
