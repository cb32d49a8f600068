"""The neutral data types every stage shares: a chat message, speech audio and its phoneme timings.

They live here, below every backend package, so the renderer reads ``Speech`` without importing the TTS
package and the session keeps ``Message`` without importing the LLM package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str
    turn: str = field(default="", compare=False, repr=False)  # the reply that answers it (or that it answers)


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
