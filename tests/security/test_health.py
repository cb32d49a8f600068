"""/healthz tells the truth and tells strangers nothing more: 503 while the primary TTS fails every call or a
TTS call hangs; the public answer is the status alone, the details (backends, workers, addresses) need what
/metrics needs."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from pydantic import SecretStr

from avatarchat.data import Speech
from avatarchat.errors import BackendError
from avatarchat.server import create_app
from avatarchat.tts import TTS
from avatarchat.tts.router import VoiceRouter
from tests.helpers import running, session_for
from tests.test_ws import open_ws


class Switchable(TTS):
    """The real Piper voice, until told to fail every call or to hang."""

    def __init__(self, inner: TTS) -> None:
        self.inner, self.name, self.default_voice = inner, inner.name, inner.default_voice
        self.failing = False
        self.hanging: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        """End the hang from the test's thread."""
        event, self.hanging = self.hanging, None
        if event is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(event.set)

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        if self.failing:
            raise BackendError("piper is down")
        if self.hanging is not None:
            self.loop = asyncio.get_running_loop()
            await self.hanging.wait()
        return await self.inner.synthesize(text, voice)

    def voices(self) -> list[str]:
        return self.inner.voices()

    def warm_up(self) -> None:
        self.inner.warm_up()

    async def aclose(self) -> None:
        pass


def _router(primary: TTS, voices: VoiceRouter) -> VoiceRouter:
    return VoiceRouter({"piper": primary, "espeak": voices.backends["espeak"]}, primary="piper",
                       script_defaults={"Latin": "piper:en_US-joe-medium", "Hangul": "espeak:ko"})


def _wait_status(base: str, want: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while (body := httpx.get(base + "/healthz", timeout=10).json())["status"] != want:
        assert time.monotonic() < deadline, (body.get("checks"), body.get("tts_calls"))
        time.sleep(0.1)
    return body


def test_healthz_is_503_while_the_primary_tts_fails_and_ok_after_it_recovers(settings, voices, renderer,
                                                                             tmp_path) -> None:
    piper = Switchable(voices.backends["piper"])
    with running(create_app(settings.model_copy(update={"data_dir": tmp_path}), tts=_router(piper, voices),
                            renderer=renderer)) as base:
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        piper.failing = True
        with open_ws(base, "down"):
            sid = session_for(base, "down")
            httpx.post(base + "/chat", json={"session_id": sid, "message": "One. Two. Three. Four."}, timeout=60)
            body = _wait_status(base, "tts_failing")
            assert httpx.get(base + "/healthz", timeout=10).status_code == 503
            assert body["checks"]["tts"] == "tts_failing"
            piper.failing = False
            httpx.post(base + "/chat", json={"session_id": sid, "message": "Back.", "queue": True}, timeout=60)
            _wait_status(base, "ok")


def test_healthz_is_503_while_a_tts_call_hangs(settings, voices, renderer, tmp_path) -> None:
    piper = Switchable(voices.backends["piper"])
    strict = settings.model_copy(update={"data_dir": tmp_path, "tts_stall_s": 0.5})
    with running(create_app(strict, tts=_router(piper, voices), renderer=renderer)) as base:
        piper.hanging = asyncio.Event()  # created here; set from the server's loop below
        with open_ws(base, "hang"):
            httpx.post(base + "/chat", json={"session_id": session_for(base, "hang"), "message": "Stuck."},
                       timeout=60)
            body = _wait_status(base, "tts_stalled")
            assert body["tts_calls"]["piper"]["oldest_call_s"] >= 0.5
            piper.release()
            _wait_status(base, "ok")


def test_public_healthz_is_the_status_alone_and_details_need_the_key(settings, voices, renderer,
                                                                     tmp_path) -> None:
    keyed = settings.model_copy(update={"data_dir": tmp_path, "access_keys": [SecretStr("sesame")]})
    with running(create_app(keyed, tts=voices, renderer=renderer)) as base:
        public = httpx.get(base + "/healthz", timeout=10)
        assert public.status_code == 200 and public.json() == {"status": "ok"}
        inside = httpx.get(base + "/healthz", headers={"authorization": "Bearer sesame"}, timeout=10).json()
        assert inside["status"] == "ok" and inside["tts"] == "piper" and "pipeline" in inside
    open_metrics = keyed.model_copy(update={"metrics_public": True})
    with running(create_app(open_metrics, tts=voices, renderer=renderer)) as base:
        assert "pipeline" in httpx.get(base + "/healthz", timeout=10).json()  # /metrics is public: so is this


class SlowPreload(Switchable):
    """Piper whose start-up preload waits until the test lets it go (a fresh Kokoro cache being rewritten)."""

    def __init__(self, inner: TTS) -> None:
        super().__init__(inner)
        self.go = threading.Event()

    def preload(self, voices: list[str] | None = None) -> None:
        assert self.go.wait(60)


def test_healthz_says_warming_while_start_up_work_still_loads_in_the_background(settings, voices, renderer,
                                                                                tmp_path) -> None:
    """The server answers before its background start-up work is done (benchmarks wait for ``warming`` to end:
    measured beside it, the first rounds paid for it)."""
    piper = SlowPreload(voices.backends["piper"])
    with running(create_app(settings.model_copy(update={"data_dir": tmp_path, "voice_enabled": False}),
                            tts=_router(piper, voices), renderer=renderer)) as base:
        body = httpx.get(base + "/healthz", timeout=10).json()
        assert body["status"] == "ok" and body["warming"] is True
        piper.go.set()
        deadline = time.monotonic() + 30
        while httpx.get(base + "/healthz", timeout=10).json()["warming"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
