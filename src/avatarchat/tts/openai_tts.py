"""``openai``: OpenAI's ``POST /audio/speech`` (or any server that copies it: Kokoro-FastAPI, speaches, ...).

We ask for ``response_format: "wav"`` rather than ``pcm``: the WAV header states the sample rate, so servers
that do not speak at OpenAI's fixed 24 kHz still come out right. OpenAI streams that WAV with placeholder
sizes (``0xffffffff``) in its header; ``speech_from_wav`` reads past them.
"""

from __future__ import annotations

import httpx

from avatarchat.data import Speech
from avatarchat.errors import BackendError
from avatarchat.http import HttpClient
from avatarchat.openai_errors import openai_error_text
from avatarchat.tts.base import TTS, VoiceLabel, speech_from_wav

SERVICE = "OpenAI TTS"
BUILTIN_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")


class OpenAITTS(TTS):
    network_bound = True
    name = "openai"

    def __init__(self, base_url: str = "https://api.openai.com/v1", api_key: str = "", model: str = "gpt-4o-mini-tts",
                 default_voice: str = "alloy", timeout_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``api_key`` may be empty for compatible servers that need none. ``transport`` replaces the network
        (tests: ``httpx.MockTransport``)."""
        self._base = base_url.rstrip("/")
        self._url = self._base + "/audio/speech"
        self._model = model
        self.default_voice = default_voice
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._client = HttpClient(SERVICE, timeout_s, headers, transport)

    def voices(self) -> list[str]:
        """OpenAI's built-in voices plus the configured one (compatible servers have their own names)."""
        return sorted({*BUILTIN_VOICES, self.default_voice})

    def describe(self, voice: str) -> VoiceLabel:
        """OpenAI's voice name, capitalised; neural voices that speak any language."""
        return VoiceLabel(label=voice.title(), tier="natural")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        body = {"model": self._model, "input": text, "voice": voice or self.default_voice, "response_format": "wav"}
        resp = await self._client.post(self._url, self._url, json=body)
        if resp.status_code != 200:
            raise BackendError(f"{SERVICE}: {openai_error_text(resp.content, resp.status_code, resp.reason_phrase)}")
        return speech_from_wav(resp.content, SERVICE)

