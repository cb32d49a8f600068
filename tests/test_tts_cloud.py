"""The ``google`` and ``openai`` TTS backends against real local HTTP servers that speak the vendors' wire formats.

Each fake is a FastAPI app under uvicorn on 127.0.0.1 (``tests.helpers.running``). It checks what a real service
checks (key, JSON fields, voice names), answers with real speech (espeak-ng, resampled to the rate asked for)
in the vendor's envelope (base64 WAV in JSON for Google; a streamed WAV with placeholder sizes for OpenAI),
and fails with the vendors' real error bodies. The last test runs the whole app with a bad Google key.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from scipy.signal import resample_poly

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.server import create_app
from avatarchat.settings import Settings
from avatarchat.tts import GoogleTTS, OpenAITTS, VoiceRouter, create_tts
from tests.helpers import free_port, running, session_for, wav_bytes
from tests.test_ws import collect, open_ws

GOOGLE_KEY = "AIzaSyTest-good-key-0123456789abcdefghi"
GOOGLE_QUOTA_KEY = "AIzaSyTest-quota-key-0123456789abcdefgh"
GOOGLE_VOICES = {"ko-KR-Neural2-A", "ko-KR-Standard-B", "en-US-Neural2-C"}
OPENAI_KEY = "sk-test-good-key"
OPENAI_QUOTA_KEY = "sk-test-no-credit"
OPENAI_MODELS = {"gpt-4o-mini-tts", "tts-1", "tts-1-hd"}
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
SLOW_VOICE = "slow"  # the OpenAI fake waits before answering, to trip the client's timeout
NOT_WAV_MODEL = "mp3-only"  # the OpenAI fake answers 200 with MP3 bytes
KOREAN = "안녕하세요. 만나서 반갑습니다."


@dataclass
class Fake:
    """A running fake service: its base URL and the requests it accepted (query, headers, JSON body)."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def speech_wav(text: str, language: str, rate: int) -> bytes:
    """Real speech for ``text`` as a 16-bit mono WAV at ``rate`` Hz (espeak-ng, then polyphase resampling)."""
    voice = "ko" if language.startswith("ko") else "en-us"
    out = subprocess.run(["espeak-ng", "--stdout", "--stdin", "-v", voice], input=text.encode(), check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        src_rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    g = gcd(rate, src_rate)
    return wav_bytes(np.clip(resample_poly(pcm, rate // g, src_rate // g), -32768, 32767), rate)


def google_error(code: int, status: str, message: str, reason: str | None = None) -> JSONResponse:
    """Google's error envelope (google.rpc.Status as JSON)."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                           "domain": "googleapis.com", "metadata": {"service": "texttospeech.googleapis.com"}}]
    return JSONResponse({"error": err}, status_code=code)


def google_app(fake: Fake) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/text:synthesize")
    def synthesize(request: Request, body: dict[str, Any]) -> JSONResponse:
        key = request.headers.get("x-goog-api-key")
        if key == GOOGLE_QUOTA_KEY:
            return google_error(429, "RESOURCE_EXHAUSTED",
                                "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
                                "'texttospeech.googleapis.com' for consumer 'project_number:123456789'.",
                                "RATE_LIMIT_EXCEEDED")
        if key != GOOGLE_KEY:
            return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                "API_KEY_INVALID")
        text = (body.get("input") or {}).get("text")
        voice = body.get("voice") or {}
        config = body.get("audioConfig") or {}
        if not isinstance(text, str) or not text.strip():
            return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        name, lang = voice.get("name"), voice.get("languageCode")
        if name not in GOOGLE_VOICES or not isinstance(lang, str) or not name.startswith(lang + "-"):
            return google_error(400, "INVALID_ARGUMENT", "No TTS voice matching the TTS request. "
                                "Please correct the voice selection params and try again.")
        if config.get("audioEncoding") != "LINEAR16" or not isinstance(config.get("sampleRateHertz"), int):
            return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        fake.requests.append({"query": dict(request.query_params), "headers": dict(request.headers), "body": body})
        audio = speech_wav(text, lang, config["sampleRateHertz"])
        return JSONResponse({"audioContent": base64.b64encode(audio).decode("ascii")})

    return app


def openai_error(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status)


def openai_app(fake: Fake) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Any:
        auth = request.headers.get("authorization", "")
        if auth == f"Bearer {OPENAI_QUOTA_KEY}":
            return openai_error(429, "You exceeded your current quota, please check your plan and billing details. "
                                "For more information on this error, read the docs: "
                                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                                "insufficient_quota", "insufficient_quota")
        if auth != f"Bearer {OPENAI_KEY}":
            return openai_error(401, "Incorrect API key provided: sk-wr***. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                                "invalid_api_key")
        body = await request.json()
        fake.requests.append({"headers": dict(request.headers), "body": body})
        if body.get("model") == NOT_WAV_MODEL:
            return StreamingResponse(iter([b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 64]),
                                     media_type="audio/mpeg")
        if body.get("model") not in OPENAI_MODELS:
            return openai_error(404, f"The model `{body.get('model')}` does not exist or you do not have access "
                                "to it.", "invalid_request_error", "model_not_found")
        if body.get("voice") == SLOW_VOICE:
            await asyncio.sleep(2.0)
        if body.get("voice") not in OPENAI_VOICES | {SLOW_VOICE}:
            return openai_error(400, f"Invalid value: '{body.get('voice')}'. Supported values are: "
                                f"{', '.join(sorted(OPENAI_VOICES))}.", "invalid_request_error", "invalid_value",
                                "voice")
        if body.get("response_format") != "wav" or not body.get("input"):
            return openai_error(400, "Invalid request.", "invalid_request_error", None)
        wav = bytearray(speech_wav(body["input"], "en", 24000))
        wav[4:8] = wav[40:44] = b"\xff\xff\xff\xff"  # like OpenAI: streamed, so the sizes are placeholders
        chunks = [bytes(wav[i : i + 4096]) for i in range(0, len(wav), 4096)]
        return StreamingResponse(iter(chunks), media_type="audio/wav")

    return app


@pytest.fixture(scope="module")
def google() -> Iterator[Fake]:
    fake = Fake("")
    with running(google_app(fake), timeout_s=30) as base:
        fake.base_url = base
        yield fake


@pytest.fixture(scope="module")
def openai() -> Iterator[Fake]:
    fake = Fake("")
    with running(openai_app(fake), timeout_s=30) as base:
        fake.base_url = base + "/v1"
        yield fake


def assert_speech(speech: Speech, rate: int, min_s: float = 0.5) -> None:
    assert speech.sample_rate == rate
    assert speech.pcm.dtype == np.int16 and speech.pcm.ndim == 1
    assert min_s < speech.duration_s < 8.0, speech.duration_s  # the header's placeholder sizes were not believed
    assert np.abs(speech.pcm).max() > 5000
    assert np.sqrt(np.mean(speech.pcm.astype(np.float64) ** 2)) > 500


# -- Google --------------------------------------------------------------------------------------------------------
async def test_google_speaks_korean(google: Fake) -> None:
    router = create_tts(Settings(_env_file=None, tts_backend="google", google_tts_api_key=GOOGLE_KEY,
                                 google_tts_base_url=google.base_url))
    assert router.default_voice == "google:ko-KR-Neural2-A"
    tts = router.backends["google"]
    assert isinstance(tts, GoogleTTS) and tts.voices() == ["ko-KR-Neural2-A"]
    speech = await tts.synthesize(KOREAN)
    assert_speech(speech, 24000, min_s=1.0)
    sent = google.requests[-1]
    assert sent["query"] == {}  # the key is never in the URL
    assert sent["headers"]["x-goog-api-key"] == GOOGLE_KEY
    assert sent["body"] == {"input": {"text": KOREAN}, "voice": {"languageCode": "ko-KR", "name": "ko-KR-Neural2-A"},
                            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24000}}
    # the per-call voice wins, and its language code follows the name
    english = await tts.synthesize("Nice to meet you.", voice="en-US-Neural2-C")
    assert_speech(english, 24000)
    assert google.requests[-1]["body"]["voice"] == {"languageCode": "en-US", "name": "en-US-Neural2-C"}
    await tts.aclose()


async def test_google_sample_rate_comes_from_the_audio(google: Fake) -> None:
    tts = GoogleTTS(GOOGLE_KEY, google.base_url, sample_rate=16000)
    assert_speech(await tts.synthesize("안녕하세요."), 16000)


@pytest.mark.parametrize(("key", "voice", "expected"), [
    ("wrong-key", "ko-KR-Neural2-A", "Google TTS: 400 INVALID_ARGUMENT: API key not valid. Please pass a valid API "
     "key. (check AVATARCHAT_GOOGLE_TTS_API_KEY)"),
    (GOOGLE_QUOTA_KEY, "ko-KR-Neural2-A", "Google TTS: 429 RESOURCE_EXHAUSTED: Quota exceeded for quota metric "
     "'Requests'"),
    (GOOGLE_KEY, "ko-KR-Neural9-Z", "Google TTS: 400 INVALID_ARGUMENT: No TTS voice matching the TTS request."),
])
async def test_google_errors_name_service_status_and_message(google: Fake, key: str, voice: str,
                                                            expected: str) -> None:
    with pytest.raises(BackendError) as info:
        await GoogleTTS(key, google.base_url).synthesize("안녕하세요.", voice=voice)
    assert info.value.message.startswith(expected), info.value.message
    assert key not in info.value.message


async def test_google_misconfiguration_and_unreachable_server() -> None:
    with pytest.raises(ConfigError, match="AVATARCHAT_GOOGLE_TTS_API_KEY"):
        GoogleTTS("")
    with pytest.raises(ConfigError, match="not a Google voice name.*AVATARCHAT_GOOGLE_TTS_VOICE"):
        GoogleTTS(GOOGLE_KEY, default_voice="alloy")
    with pytest.raises(BadRequest, match="not a Google voice name"):  # a request's voice stays a request error
        await GoogleTTS(GOOGLE_KEY).synthesize("hi", voice="alloy")
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=f"Google TTS: cannot reach {dead}"):
        await GoogleTTS(GOOGLE_KEY, dead).synthesize("hi")


# -- OpenAI --------------------------------------------------------------------------------------------------------
async def test_openai_speaks_with_settings(openai: Fake) -> None:
    """Its own URL and key (it used the LLM's, silently: a local LLM's URL and key went to the TTS)."""
    router = create_tts(Settings(_env_file=None, tts_backend="openai", openai_tts_base_url=openai.base_url,
                                 openai_tts_api_key=OPENAI_KEY, openai_tts_voice="nova",
                                 openai_base_url="http://127.0.0.1:9/v1", openai_api_key="sk-the-llms-key"))
    assert router.default_voice == "openai:nova"
    tts = router.backends["openai"]
    assert isinstance(tts, OpenAITTS) and "nova" in tts.voices()
    speech = await tts.synthesize("Hello there, nice to meet you.")
    assert_speech(speech, 24000, min_s=1.0)
    sent = openai.requests[-1]
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent["body"] == {"model": "gpt-4o-mini-tts", "input": "Hello there, nice to meet you.", "voice": "nova",
                            "response_format": "wav"}
    await tts.synthesize("Again.", voice="onyx")
    assert openai.requests[-1]["body"]["voice"] == "onyx"
    await tts.aclose()


@pytest.mark.parametrize(("key", "model", "voice", "expected"), [
    ("sk-wrong", "tts-1", "alloy", "OpenAI TTS: 401 invalid_api_key: Incorrect API key provided"),
    (OPENAI_QUOTA_KEY, "tts-1", "alloy", "OpenAI TTS: 429 insufficient_quota: You exceeded your current quota"),
    (OPENAI_KEY, "tts-9", "alloy", "OpenAI TTS: 404 model_not_found: The model `tts-9` does not exist"),
    (OPENAI_KEY, "tts-1", "bob", "OpenAI TTS: 400 invalid_value: Invalid value: 'bob'. Supported values are: alloy"),
    (OPENAI_KEY, NOT_WAV_MODEL, "alloy", "OpenAI TTS: the answer is not WAV audio"),
])
async def test_openai_errors_are_clear(openai: Fake, key: str, model: str, voice: str, expected: str) -> None:
    tts = OpenAITTS(openai.base_url, key, model=model, default_voice=voice)
    with pytest.raises(BackendError) as info:
        await tts.synthesize("Hello.")
    assert info.value.message.startswith(expected), info.value.message
    if key == "sk-wrong":
        assert info.value.message.endswith("(check AVATARCHAT_OPENAI_API_KEY)")


async def test_openai_timeout(openai: Fake) -> None:
    tts = OpenAITTS(openai.base_url, OPENAI_KEY, default_voice=SLOW_VOICE, timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"OpenAI TTS: no answer from .*/audio/speech within 0.3 s"):
        await tts.synthesize("Hello.")
    assert time.monotonic() - t0 < 1.5


# -- the whole app ---------------------------------------------------------------------------------------------------
def test_bad_google_key_reaches_the_socket_and_the_reply_still_arrives(google: Fake, renderer: MeshWarpRenderer,
                                                                      tmp_path: Path, caplog) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, port=0, llm_backend="echo", tts_backend="google",
                        google_tts_api_key="bad", google_tts_base_url=google.base_url)
    with running(create_app(settings, renderer=renderer)) as base:
        assert httpx.get(base + "/healthz").json()["tts"] == "google"
        with open_ws(base, "google-1") as ws:
            r = httpx.post(base + "/chat", json={"session_id": session_for(base, "google-1"), "message": KOREAN},
                           timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["text"] == KOREAN
            events = collect(ws, "speech_done", timeout_s=30)
    types = [e["type"] for e in events]
    assert "clip_ready" not in types, types
    errors = [e for e in events if e["type"] == "error"]
    assert errors and len(errors) == r.json()["sentences"], types
    for e in errors:
        assert e["code"] == "backend_error"
        # The page gets our words only; Google's answer (and the key) go to the server log, the key masked.
        assert "backend service" in e["message"] and "INVALID_ARGUMENT" not in e["message"]
        assert google.base_url not in e["message"] and len(e["message"]) <= 300
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Google TTS: 400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key." in logged
    assert types.index("speech_done") > max(i for i, t in enumerate(types) if t == "error")
    assert events[-1]["clips"] == 0 and events[-1]["reply"] == r.json()["reply_id"]
    assert "key=bad" not in json.dumps(events)


def test_a_hanging_cloud_tts_holds_no_cpu_slot(settings, voices, renderer, tmp_path) -> None:
    """Google hangs on a Korean sentence; another session's English reply is still voiced and rendered in the
    server's one CPU slot while that call hangs (it used to hold the slot for the whole TTS timeout)."""
    release = threading.Event()
    calls: list[str] = []
    hanging = FastAPI()

    @hanging.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @hanging.post("/v1/text:synthesize")
    async def synthesize(body: dict[str, Any]) -> JSONResponse:
        calls.append(body["input"]["text"])
        await asyncio.to_thread(release.wait, 40)
        audio = speech_wav(body["input"]["text"], "ko", body["audioConfig"]["sampleRateHertz"])
        return JSONResponse({"audioContent": base64.b64encode(audio).decode("ascii")})

    with running(hanging) as google_url:
        google = GoogleTTS(api_key=GOOGLE_KEY, base_url=google_url, timeout_s=60)
        router = VoiceRouter({"piper": voices.backends["piper"], "google": google}, primary="piper",
                             script_defaults={"Latin": "piper:en_US-joe-medium", "Hangul": "google:ko-KR-Neural2-A"})
        one_slot = settings.model_copy(update={"data_dir": tmp_path, "render_threads": 1})
        try:
            with running(create_app(one_slot, tts=router, renderer=renderer)) as base:
                with open_ws(base, "ko") as ko, open_ws(base, "en") as en:
                    httpx.post(base + "/chat", json={"session_id": session_for(base, "ko"), "message": KOREAN},
                               timeout=30)
                    deadline = time.monotonic() + 30
                    while not calls:
                        assert time.monotonic() < deadline, "the Korean sentence never reached Google"
                        time.sleep(0.05)
                    httpx.post(base + "/chat", json={"session_id": session_for(base, "en"), "message": "Hello there."},
                               timeout=30)
                    collect(en, "clip_ready", timeout_s=30)
                    assert not release.is_set()  # the English clip came while Google still hung
                    release.set()
                    collect(ko, "speech_done", timeout_s=60)
        finally:
            release.set()
