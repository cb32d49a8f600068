"""The ASR interface: 16 kHz mono PCM of one utterance in, its text out.

Backends are blocking and CPU-bound; callers (the listener, the CLI) run them in their own threads. A backend
loads its model lazily, once, on the first ``transcribe`` or ``warm_up``, so a server that nobody speaks to
never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # what the backend recognised ("en"), or the language it was told to use
    audio_s: float  # seconds of audio transcribed
    compute_s: float  # seconds the backend spent on it
    logprob: float = 0.0  # mean token log-probability of the text (Whisper's avg_logprob); 0.0: not known


class ASR(Protocol):
    name: str
    #: languages it recognises ("en", "ko"); "auto" in settings means "whichever of these is spoken"
    languages: tuple[str, ...]

    def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        """``pcm``: int16 or float32 mono samples at 16 kHz. ``language`` None: the backend decides."""
        ...

    def warm_up(self) -> None: ...


def as_float(pcm: np.ndarray) -> np.ndarray:
    """int16 (or float) samples -> float32 in [-1, 1]."""
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return np.asarray(pcm, dtype=np.float32)
