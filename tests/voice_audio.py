"""Speech for the voice-input tests and the benchmark, made by the offline voices: 16 kHz mono int16."""

from __future__ import annotations

import asyncio
import difflib
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avatarchat.data import Speech

RATE = 16000


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    x = resample_poly(pcm.astype(np.float32), RATE, rate) if rate != RATE else pcm.astype(np.float32)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def trim(pcm: np.ndarray, level: int = 300) -> np.ndarray:
    """The samples from the first to the last one louder than ``level``: where speech really is."""
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > level)[0]
    return pcm[loud[0]: loud[-1] + 1] if len(loud) else pcm[:0]


def speak(tts, text: str, voice: str | None = None) -> np.ndarray:
    """``text`` said by ``tts`` (a TTS backend), trimmed to its speech, at 16 kHz."""
    with ThreadPoolExecutor(1) as pool:  # its own loop, even where one runs already (Playwright's sync API)
        speech = pool.submit(asyncio.run, tts.synthesize(text, voice)).result()
    return trim(to_16k(speech.pcm, speech.sample_rate))


def sounds_like(heard: str, expected: str, at_least: float = 0.7) -> bool:
    """``heard`` is ``expected`` but for an ASR slip: their letters (case, spaces and punctuation aside) agree at
    least ``at_least`` (difflib's ratio). Piper says a sentence a little differently each time, and Whisper
    tiny.en mishears about one take in 40: "Flacedel meet a story" for "Please tell me a story" is 0.72, 0.87
    after a right "Good morning, how are you?" (that sentence alone, or said twice: 0.69 and 0.79)."""
    def letters(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())

    return difflib.SequenceMatcher(None, letters(heard), letters(expected)).ratio() >= at_least


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def noise(seconds: float, rms: float = 200.0, seed: int = 0) -> np.ndarray:
    """Gaussian noise (room hiss) at ``rms`` (int16 units; 200 is about -44 dBFS)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, rms, int(seconds * RATE)), -32768, 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def hum(seconds: float = 0.6, f0: float = 140.0, level: int = 8000) -> np.ndarray:
    """A closed-mouth hum (a harmonic tone with soft edges): the VAD takes it for speech, Whisper finds no words."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.minimum(1.0, np.minimum(t / 0.05, (seconds - t) / 0.08))
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12)) * envelope
    return (x / np.abs(x).max() * level).astype(np.int16)


def pauses_s(speech: Speech) -> list[float]:
    """Lengths of the runs of 10 ms frames under 2 % of the peak (tts.silence.QUIET), with sound on both sides."""
    hop = speech.sample_rate // 100
    frames = np.abs(speech.pcm[: len(speech.pcm) // hop * hop].astype(np.int32)).reshape(-1, hop).max(axis=1)
    loud = np.flatnonzero(frames > 0.02 * frames.max())
    return [round((b - a - 1) * 0.01, 2) for a, b in zip(loud[:-1], loud[1:], strict=True) if b - a > 1]
