"""Whisper through faster-whisper (CTranslate2, int8 on the CPU), with a model that ships inside a package.

``tiny.en`` and the multilingual ``base`` come in packages (see bundled.py).
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
from avatarchat.asr.bundled import SplitModel, find_model

log = logging.getLogger(__name__)

#: Whisper's tell-tale inventions on breath and noise: a "turn" that is only this is no turn.
NOISE_TEXTS = frozenset({"", "you", "thank you", "thanks for watching", "bye", "uh", "um", "hmm",
                         "감사합니다", "시청해주셔서 감사합니다", "구독과 좋아요 부탁드립니다"})


class WhisperASR:
    name = "whisper"

    def __init__(self, model: str = "tiny.en", threads: int = 1, cache_dir: Path = Path("data/models")) -> None:
        """``cache_dir``: where a model that ships in parts is joined (on first use, in the loading thread)."""
        self.model_name = model
        self._found = find_model(model, cache_dir)  # fail at start-up, not at the first utterance
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()
        # English-only Whisper models are named "*.en"; the others recognise (among many) English and Korean.
        english_only = model.endswith(".en") or self._found.name.endswith(".en")
        self.languages: tuple[str, ...] = ("en",) if english_only else ("en", "ko")

    def _load(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                t0 = time.perf_counter()
                path = self._found.assemble() if isinstance(self._found, SplitModel) else self._found
                self._model = WhisperModel(str(path), device="cpu", compute_type="int8",
                                           cpu_threads=self.threads, num_workers=1, local_files_only=True)
                log.info("ASR model %s loaded in %.2f s", self.model_name, time.perf_counter() - t0)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

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
