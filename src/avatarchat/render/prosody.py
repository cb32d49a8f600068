"""What the voice does, per video frame: how loud, how high, where it pauses and which syllables it stresses.

Head and brow motion (render/head_motion.py) is driven by these features, and they are computed from the audio
alone (no text, no phoneme timing), so any TTS backend, language or recorded voice drives the same way. Pitch is
a plain normalised-autocorrelation estimate in numpy: cheap, and good enough to find accents and a rising end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from avatarchat.data import Speech

RANGE_DB = 40.0  # loudness is mapped to 0..1 over this many dB below the loudest frame
F0_MIN, F0_MAX = 70.0, 400.0  # Hz: the speaking range searched for the pitch
VOICING = 0.45  # normalised autocorrelation above which a frame counts as voiced
PAUSE_LEVEL = 0.2  # loudness (0..1) under which a frame is quiet
PAUSE_MIN_S = 0.15  # a quiet stretch at least this long is a pause


@dataclass(frozen=True)
class Prosody:
    """Per-frame features of one utterance (all arrays have one entry per video frame)."""

    loudness: np.ndarray  # 0 (silent, >= 40 dB below the peak) .. 1 (the loudest frame)
    pitch: np.ndarray  # semitones above the utterance's median pitch; 0 where unvoiced
    voiced: np.ndarray  # bool
    pause: np.ndarray  # bool: inside a pause (or the silence before and after the speech)
    stresses: np.ndarray  # frame indices of stressed syllables (loudness peaks)
    stress_weight: np.ndarray  # 0..1 per stress: how prominent (loudness and pitch)
    phrase_ends: np.ndarray  # frame indices where speech stops for a pause or for good
    question: bool  # the pitch rises at the end

    @property
    def n(self) -> int:
        return len(self.loudness)


def frame_slots(pcm: np.ndarray, sample_rate: int, fps: int, n: int, width: float = 1.0) -> np.ndarray:
    """(n, m) windows of the signal, one per video frame, centred on the frame's slot and ``width`` slots wide."""
    hop = sample_rate / fps
    m = int(round(hop * width))
    starts = np.round((np.arange(n) + 0.5) * hop - m / 2).astype(int)
    padded = np.concatenate([np.zeros(m), pcm, np.zeros(m)])
    idx = starts[:, None] + m + np.arange(m)[None, :]
    return padded[np.clip(idx, 0, len(padded) - 1)]


def loudness(x: np.ndarray, sample_rate: int, fps: int, n: int) -> np.ndarray:
    slots = frame_slots(x, sample_rate, fps, n)
    db = 10 * np.log10(np.mean(slots * slots, axis=1) + 1e-10)
    return np.clip((db - (db.max() - RANGE_DB)) / RANGE_DB, 0.0, 1.0)


def pitch_track(x: np.ndarray, sample_rate: int, fps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, voicing strength 0..1) per frame, by normalised autocorrelation over two-slot windows."""
    win = frame_slots(x, sample_rate, fps, n, width=2.0)
    win = (win - win.mean(axis=1, keepdims=True)) * np.hanning(win.shape[1])[None, :]
    size = 1 << int(np.ceil(np.log2(2 * win.shape[1])))
    spec = np.fft.rfft(win, size, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), size, axis=1)[:, : win.shape[1]]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(sample_rate / F0_MAX), min(int(sample_rate / F0_MIN), win.shape[1] - 2)
    band = ac[:, lo:hi]
    k = np.argmax(band, axis=1)
    strength = band[np.arange(n), k]
    # Parabolic refinement of the peak lag.
    kk = np.clip(k, 1, band.shape[1] - 2)
    a, b, c = band[np.arange(n), kk - 1], band[np.arange(n), kk], band[np.arange(n), kk + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-9, 0.5 * (a - c) / np.where(np.abs(den) > 1e-9, den, 1.0), 0.0)
    lag = lo + kk + np.clip(shift, -0.5, 0.5)
    return sample_rate / lag, np.clip(strength, 0.0, 1.0)


def pauses(quiet: np.ndarray, fps: int) -> np.ndarray:
    """Quiet stretches of at least PAUSE_MIN_S (shorter dips are stop consonants, not pauses)."""
    out = np.zeros_like(quiet)
    k, n, need = 0, len(quiet), max(1, int(round(PAUSE_MIN_S * fps)))
    while k < n:
        if quiet[k]:
            j = k
            while j < n and quiet[j]:
                j += 1
            if j - k >= need or k == 0 or j == n:
                out[k:j] = True
            k = j
        else:
            k += 1
    return out


def analyse(speech: Speech, fps: int, n: int) -> Prosody:
    """The prosody of ``speech`` at ``fps``, over ``n`` frames."""
    x = speech.pcm.astype(np.float64) / 32768.0
    loud = loudness(x, speech.sample_rate, fps, n)
    f0, strength = pitch_track(x, speech.sample_rate, fps, n)
    voiced = (strength > VOICING) & (loud > 0.35)
    semis = np.zeros(n)
    if voiced.sum() >= 3:
        semis[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
        semis = np.clip(semis, -8.0, 8.0)
    pause = pauses(loud < PAUSE_LEVEL, fps)
    smooth = gaussian_filter1d(loud, 1.2)
    peaks, props = find_peaks(smooth, distance=max(1, int(0.22 * fps)), prominence=0.08, height=0.45)
    pitch_up = np.array([semis[max(0, p - 2) : p + 3].max(initial=0.0) for p in peaks])
    weight = np.clip(0.5 * props["prominences"] / 0.3 + 0.5 * np.clip(pitch_up / 4.0, 0, 1), 0.0, 1.0)
    ends = np.nonzero(~pause[:-1] & pause[1:])[0] + 1 if n > 1 else np.zeros(0, int)
    return Prosody(loudness=loud, pitch=semis, voiced=voiced, pause=pause, stresses=peaks.astype(int),
                   stress_weight=weight, phrase_ends=ends.astype(int), question=rises_at_end(semis, voiced, fps))


def rises_at_end(semis: np.ndarray, voiced: np.ndarray, fps: int) -> bool:
    """True when the last voiced half second ends at least 2 semitones above where it started."""
    idx = np.nonzero(voiced)[0]
    if len(idx) < 6:
        return False
    tail = idx[idx >= idx[-1] - int(0.5 * fps)]
    if len(tail) < 4:
        return False
    q = max(1, len(tail) // 3)
    return float(semis[tail[-q:]].mean() - semis[tail[:q]].mean()) >= 2.0
