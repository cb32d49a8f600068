"""Several ASR models behind one, chosen by the language each call names.

English keeps Whisper ``tiny.en`` (about 3x faster than ``base`` on this CPU, and as accurate on clear English);
the languages it does not know (Korean) go to a multilingual model. The language is always named by the caller
(the session's voice or the server's setting), never guessed: Whisper base's own detection called espeak-ng's
Korean "Thai". Each model loads on its first call unless ``warm`` names its language.
"""

from __future__ import annotations

import numpy as np

from avatarchat.asr.base import ASR, Transcript


class LanguageASR:
    name = "whisper"

    def __init__(self, models: dict[str, ASR], warm: tuple[str, ...] = ()) -> None:
        """``models``: language -> the model that hears it (the first is the default); ``warm``: languages whose
        model ``warm_up`` loads (the default's always is)."""
        self.models = models
        self.languages: tuple[str, ...] = tuple(models)
        self.warm = warm

    def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        language = language if language in self.models else self.languages[0]
        return self.models[language].transcribe(pcm, language)

    def warm_up(self) -> None:
        done: list[ASR] = []
        for language in (self.languages[0], *self.warm):
            model = self.models.get(language)
            if model is not None and not any(model is m for m in done):
                model.warm_up()
                done.append(model)
