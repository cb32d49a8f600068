"""``google``: Google Cloud Text-to-Speech over its REST API (``POST /v1/text:synthesize``).

Speaks the wire format directly with httpx, so no Google SDK or service-account file is needed: an API key is
enough. The key travels in the ``x-goog-api-key`` header, never in the URL, so no access log or proxy error
that quotes a URL can leak it. We ask for LINEAR16, which Google returns base64-encoded *with* a WAV header,
so the sample rate is read from the audio itself.
"""

from __future__ import annotations

import base64
import binascii

import httpx

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.http import HttpClient
from avatarchat.tts.base import TTS, VoiceLabel, speech_from_wav

SERVICE = "Google TTS"
KEY_HINT = "check AVATARCHAT_GOOGLE_TTS_API_KEY"


def language_code(voice: str) -> str:
    """``ko-KR-Neural2-A`` -> ``ko-KR``: Google voice names start with their BCP-47 language code."""
    parts = voice.split("-")
    if len(parts) < 3 or not all(parts[:2]):
        raise BadRequest(f"{SERVICE}: voice {voice!r} is not a Google voice name such as 'ko-KR-Neural2-A'")
    return "-".join(parts[:2])


class GoogleTTS(TTS):
    name = "google"
    network_bound = True

    def __init__(self, api_key: str, base_url: str = "https://texttospeech.googleapis.com",
                 default_voice: str = "ko-KR-Neural2-A", timeout_s: float = 30.0, sample_rate: int = 24000,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Configuration problems (no key, a configured voice that is not a Google voice name) are
        ``ConfigError`` here, at start-up. ``transport`` replaces the network (tests: ``httpx.MockTransport``)."""
        if not api_key:
            raise ConfigError(f"{SERVICE} needs an API key: set AVATARCHAT_GOOGLE_TTS_API_KEY")
        try:
            language_code(default_voice)  # a bad configured voice fails at start-up, not on the first reply
        except BadRequest as exc:
            raise ConfigError(f"{exc.message} (check AVATARCHAT_GOOGLE_TTS_VOICE)") from exc
        self._base = base_url.rstrip("/")
        self._url = self._base + "/v1/text:synthesize"
        self.default_voice = default_voice
        self._rate = sample_rate
        self._client = HttpClient(SERVICE, timeout_s, {"x-goog-api-key": api_key}, transport)

    def voices(self) -> list[str]:
        """Only the configured voice: Google's catalogue needs a network call (``GET /v1/voices``)."""
        return [self.default_voice]

    def describe(self, voice: str) -> VoiceLabel:
        """Google's voice name as its label (its gender is in the catalogue we do not fetch); neural voices."""
        return VoiceLabel(label=voice, tier="natural" if any(k in voice for k in ("Neural", "Wavenet", "Chirp",
                                                                                    "Studio")) else None)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        name = voice or self.default_voice
        body = {
            "input": {"text": text},
            "voice": {"languageCode": language_code(name), "name": name},
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": self._rate},
        }
        resp = await self._client.post(self._url, self._base, json=body)
        if resp.status_code != 200:
            raise BackendError(f"{SERVICE}: {_error_text(resp)}")
        try:
            audio = base64.b64decode(resp.json()["audioContent"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise BackendError(f"{SERVICE}: the answer has no usable audioContent: {resp.text[:200]!r}") from exc
        return speech_from_wav(audio, SERVICE)


def _error_text(resp: httpx.Response) -> str:
    """Google's ``{"error": {"code", "message", "status", "details"}}`` -> ``429 RESOURCE_EXHAUSTED: Quota ...``."""
    try:
        err = resp.json()["error"]
        message, status = str(err["message"]), str(err.get("status", ""))
        details = err.get("details") or []
    except (ValueError, KeyError, TypeError):
        return f"{resp.status_code} {resp.reason_phrase}: {resp.text[:300]}"
    text = f"{err.get('code', resp.status_code)} {status}".strip() + f": {message}"
    reasons = {d.get("reason") for d in details if isinstance(d, dict)} if isinstance(details, list) else set()
    if "API_KEY_INVALID" in reasons or "API key" in message or resp.status_code == 401:
        text += f" ({KEY_HINT})"
    return text
