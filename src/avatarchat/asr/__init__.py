"""Speech recognition backends, chosen by name in settings, and the voice activity detector they work with."""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.asr.base import ASR, SAMPLE_RATE, Transcript
from avatarchat.asr.whisper import WhisperASR
from avatarchat.errors import ConfigError
from avatarchat.settings import Settings

REGISTRY: dict[str, Callable[[Settings], ASR]] = {
    "whisper": lambda s: WhisperASR(model=s.asr_model, threads=1),
}

#: Why Korean speech is not recognised offline (see docs/architecture.md, "Speech recognition").
NO_KOREAN = ("Korean speech recognition is not available offline: the bundled model (Whisper tiny.en) is "
             "English only, and no Korean model that ships in a package is both licensed and accurate enough. Set "
             "AVATARCHAT_ASR_LANGUAGE=auto or en, or AVATARCHAT_ASR_MODEL to a multilingual CTranslate2 Whisper model.")


def create_asr(settings: Settings) -> ASR:
    return REGISTRY[settings.asr_backend](settings)


def asr_language(settings: Settings, asr: ASR) -> str | None:
    """The language to ask the backend for: None lets a multilingual backend decide; a language it does not
    know is a ``ConfigError`` at start-up rather than nonsense text later."""
    wanted = settings.asr_language
    if wanted == "auto":
        return asr.languages[0] if len(asr.languages) == 1 else None
    if wanted not in asr.languages:
        raise ConfigError(NO_KOREAN if wanted == "ko" else f"The ASR model does not recognise {wanted!r}.")
    return wanted


__all__ = ["ASR", "SAMPLE_RATE", "Transcript", "WhisperASR", "REGISTRY", "create_asr", "asr_language"]
