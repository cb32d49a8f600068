"""The TTS interface: text in, 16-bit mono PCM (plus phoneme timings where the engine has them) out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


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
