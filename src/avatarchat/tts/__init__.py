"""TTS backends, chosen by name in settings."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from avatarchat.data import PhonemeTiming, Speech
from avatarchat.settings import Settings
from avatarchat.tts.base import TTS
from avatarchat.tts.espeak import EspeakTTS
from avatarchat.tts.google import GoogleTTS
from avatarchat.tts.kokoro import KokoroTTS
from avatarchat.tts.openai_tts import OpenAITTS
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.router import VoiceRouter

REGISTRY: dict[str, Callable[[Settings], TTS]] = {
    "piper": lambda s: PiperTTS(default_voice=s.piper_voice, threads=s.piper_threads,
                                alone_threads=s.piper_alone_threads, cache_dir=s.model_cache_dir),
    "espeak": lambda s: EspeakTTS(default_voice=s.espeak_voice, rate=s.espeak_rate, pitch=s.espeak_pitch,
                                  variant=s.espeak_variant, max_procs=s.espeak_max_procs),
    "kokoro": lambda s: KokoroTTS(default_voice=s.kokoro_voice, cache_dir=s.model_cache_dir,
                                  threads=s.kokoro_threads, speed=s.kokoro_speed,
                                  alone_threads=s.kokoro_alone_threads),
    "google": lambda s: GoogleTTS(api_key=s.google_tts_api_key.get_secret_value(), base_url=s.google_tts_base_url,
                                  default_voice=s.google_tts_voice, timeout_s=s.tts_timeout_s),
    "openai": lambda s: OpenAITTS(base_url=s.openai_tts_base_url, api_key=s.openai_tts_api_key.get_secret_value(),
                                  model=s.openai_tts_model, default_voice=s.openai_tts_voice,
                                  timeout_s=s.tts_timeout_s),
}


OFFLINE = ("piper", "espeak", "kokoro")  # always offered beside the configured backend, when they can run here


def create_tts(settings: Settings) -> VoiceRouter:
    """The configured backend (whose default voice is the default), plus the offline ones for other languages."""
    backends: dict[str, TTS] = {settings.tts_backend: REGISTRY[settings.tts_backend](settings)}
    for name in OFFLINE:
        if name in backends or (name in ("espeak", "kokoro") and shutil.which("espeak-ng") is None):
            continue
        backends[name] = REGISTRY[name](settings)
    return VoiceRouter(backends, primary=settings.tts_backend,
                       script_defaults={"Latin": settings.voice_en, "Hangul": settings.voice_ko},
                       network_concurrency=settings.cloud_tts_concurrency)


def as_router(tts: TTS) -> VoiceRouter:
    """Any single backend as a router (what the app and pipeline work with)."""
    return tts if isinstance(tts, VoiceRouter) else VoiceRouter({tts.name: tts}, primary=tts.name, script_defaults={})


__all__ = ["TTS", "Speech", "PhonemeTiming", "PiperTTS", "EspeakTTS", "GoogleTTS", "KokoroTTS", "OpenAITTS",
           "create_tts", "as_router", "VoiceRouter", "REGISTRY"]
