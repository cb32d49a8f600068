"""The TTS interface: text in, 16-bit mono PCM (plus phoneme timings where the engine has them) out."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from avatarchat.errors import BackendError


@dataclass(frozen=True)
class PhonemeTiming:
    phoneme: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Speech:
    """Mono int16 samples at ``sample_rate``; ``phonemes`` is empty when the engine gives no timings."""

    pcm: np.ndarray
    sample_rate: int
    phonemes: list[PhonemeTiming] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16 or self.pcm.ndim != 1:
            raise ValueError("Speech.pcm must be 1-D int16")
        if self.sample_rate <= 0:
            raise ValueError("Speech.sample_rate must be positive")

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


class TTS(Protocol):
    name: str
    default_voice: str

    async def synthesize(self, text: str, voice: str | None = None) -> Speech: ...

    def voices(self) -> list[str]: ...


def speech_from_wav(data: bytes, who: str) -> Speech:
    """16-bit WAV bytes -> ``Speech`` (mixed down to mono).

    Streamed WAV (``espeak-ng --stdout``, OpenAI's ``/audio/speech``) carries placeholder sizes such as
    ``0x7ffff000`` or ``0xffffffff`` in its header because the length is unknown when the header is written,
    so the samples are taken as whatever data actually follows the header.
    """
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise BackendError(f"{who}: the answer is not WAV audio ({exc}; starts with {data[:16]!r})") from exc
    if width != 2:
        raise BackendError(f"{who}: expected 16-bit WAV audio, got {8 * width}-bit")
    raw = raw[: len(raw) - len(raw) % (2 * channels)]
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if channels > 1:
        pcm = np.round(pcm.reshape(-1, channels).mean(axis=1)).astype(np.int16)
    if len(pcm) == 0:
        raise BackendError(f"{who}: the answer held no audio samples")
    return Speech(pcm=pcm, sample_rate=rate)
