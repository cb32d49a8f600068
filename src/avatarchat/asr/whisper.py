"""Whisper through faster-whisper (CTranslate2, int8 on the CPU), with a model that ships inside a package.

``tiny.en`` and the multilingual ``base`` come in packages (see bundled.py).
A model is a local directory only: a bundled name or a path to a CTranslate2 Whisper model. Nothing is ever
downloaded: faster-whisper only reaches for the Hugging Face hub when given a name it does not find on disk,
and we never hand it one. The model loads once, on first use, with one CPU thread (the other core renders).

Whisper hears 30 s at a time, and faster-whisper pads every turn to that: the encoder then costs ~0.4 s on one
core for a 2 s question (``base``: ~0.9 s), most of the wait between the end of a spoken turn and its answer.
CTranslate2's encoder takes a shorter window, so a turn is heard in a window of its own length plus 2 s of
silence, at least 10 s (~60 ms for ``tiny.en``, ~170 ms for ``base``). Windows of a turn plus 1-2 s made Whisper
repeat itself on short turns ("Yes. Yes. Yes. ..."); from 10 s on it did not, on any sentence, backchannel or
noise we tried. A window that still ends in a loop (no end of text within a generous token budget, or text that
repeats, by faster-whisper's own compression-ratio rule) is heard again in the full 30 s.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from avatarchat.asr.base import SAMPLE_RATE, Transcript, as_float
from avatarchat.asr.bundled import SplitModel, find_model

log = logging.getLogger(__name__)

#: Whisper's tell-tale inventions on breath and noise: a "turn" that is only this is no turn.
NOISE_TEXTS = frozenset({"", "you", "thank you", "thanks for watching", "bye", "uh", "um", "hmm",
                         "감사합니다", "시청해주셔서 감사합니다", "구독과 좋아요 부탁드립니다"})


WINDOW_S = 30.0  # what Whisper was trained on
SHORT_MIN_S = 10.0  # shorter windows made Whisper loop on short turns
SHORT_MARGIN_S = 2.0  # silence after the turn inside its window
TOKENS_PER_S = 20.0  # a budget no real speech reaches (Korean, the densest in tokens, came to ~4 per second)
MAX_COMPRESSION = 2.4  # faster-whisper's own sign of a repetition loop (zlib ratio of the text)


def repeats(text: str) -> bool:
    """A loop: the text's UTF-8 bytes compress more than ``MAX_COMPRESSION`` times (faster-whisper's own sign),
    or a sentence of two words or more comes twice in a row.
    Bytes, not characters: a Korean syllable is three bytes, so by characters a Korean loop (one sentence said
    three and a half times) read 1.2, under the limit, and was taken as the turn's words. The doubled sentence
    is the loop too short to compress: "Good morning, how are you? Good morning, how are you?" for one Piper
    "Good morning, how are you?" (1 take in 20), which the full window heard once."""
    data = text.encode()
    if len(data) / len(zlib.compress(data)) > MAX_COMPRESSION:
        return True
    sentences = [" ".join(re.findall(r"\w+", s.lower())) for s in re.split(r"(?<=[.!?。？！])\s+", text)]
    return any(a == b and " " in a for a, b in zip(sentences, sentences[1:], strict=False))


class WhisperASR:
    name = "whisper"

    def __init__(self, model: str = "tiny.en", threads: int = 1, cache_dir: Path = Path("data/models"),
                 short_min_s: float = SHORT_MIN_S) -> None:
        """``cache_dir``: where a model that ships in parts is joined (on first use, in the loading thread).
        ``short_min_s``: the shortest window a turn is heard in (see the module's docstring)."""
        self.model_name = model
        self.short_min_s = short_min_s
        self.full_windows = 0  # calls heard in the full 30 s window (too long, or a loop in the short one)
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
        heard = self._short(model, audio, language)
        if heard is None:  # too long for a short window, no language given, or a loop in it: the full 30 s
            self.full_windows += 1
            heard = self._full(model, audio, language)
        text, logprob, lang = heard
        if text.lower().strip(" .!?,") in NOISE_TEXTS:
            text = ""
        return Transcript(text=text, language=lang, audio_s=len(audio) / SAMPLE_RATE,
                          compute_s=time.perf_counter() - t0, logprob=logprob if text else 0.0)

    @staticmethod
    def _full(model, audio: np.ndarray, language: str | None) -> tuple[str, float, str]:
        segments, info = model.transcribe(audio, language=language, beam_size=1, without_timestamps=True,
                                          condition_on_previous_text=False, vad_filter=False)
        kept = [s for s in segments if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)]
        text = " ".join(t for t in (s.text.strip() for s in kept) if t)
        return text, (sum(s.avg_logprob for s in kept) / len(kept) if kept else 0.0), info.language

    def _short(self, model, audio: np.ndarray, language: str | None) -> tuple[str, float, str] | None:
        """The turn in a window of its own length (see the module's docstring); None: use the full window."""
        seconds = len(audio) / SAMPLE_RATE
        window = max(self.short_min_s, math.ceil(seconds + SHORT_MARGIN_S))
        multilingual = model.model.is_multilingual
        if window > WINDOW_S or (multilingual and language is None):
            return None
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe",
                              language=language if multilingual else None)
        padded = np.zeros(int(window * SAMPLE_RATE), np.float32)
        padded[: len(audio)] = audio
        frames = int(window * SAMPLE_RATE) // model.feature_extractor.hop_length
        features = model.feature_extractor(padded)[:, :frames]
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        budget = int(16 + TOKENS_PER_S * seconds)
        result = model.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
                                      [prompt], beam_size=1, return_scores=True, return_no_speech_prob=True,
                                      max_length=min(model.max_length, len(prompt) + budget))[0]
        ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        if len(result.sequences_ids[0]) >= budget:
            return None  # no end of text: a loop
        text = tokenizer.decode(ids).strip()
        if text and repeats(text):
            return None
        n = len(result.sequences_ids[0])
        logprob = result.scores[0] * n / (n + 1)  # faster-whisper's avg_logprob (the end token counted)
        if result.no_speech_prob > 0.6 and logprob < -1.0:
            text = ""
        return text, logprob, language or "en"
