"""TTS backends, chosen by name in settings."""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.settings import Settings
from avatarchat.tts.base import TTS, PhonemeTiming, Speech
from avatarchat.tts.piper import PiperTTS

REGISTRY: dict[str, Callable[[Settings], TTS]] = {
    "piper": lambda s: PiperTTS(default_voice=s.tts_voice),
}


def create_tts(settings: Settings) -> TTS:
    return REGISTRY[settings.tts_backend](settings)


__all__ = ["TTS", "Speech", "PhonemeTiming", "PiperTTS", "create_tts", "REGISTRY"]
