"""The pitch (f0) of synthetic speech, fast enough to run on every sentence before it is reshaped.

WORLD's own trackers were measured on Piper's ``en_US-joe-medium``: Harvest is smooth but costs about 0.1 s per
second of speech (as much as rendering the clip), and DIO is fast but jumps between octaves on this voice, which
came out of the WORLD vocoder (which did the reshaping before TD-PSOLA) as warble. YIN over 5 ms hops at ~11 kHz
costs about 0.01 s per second of speech; its octave choice is then folded towards a running median, so the track
is continuous (what reshaping needs: the contour is scaled, so a consistent octave matters more than which octave).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import medfilt, resample_poly

F0_MIN, F0_MAX = 60.0, 450.0  # Hz searched
DIP = 0.15  # YIN's absolute threshold: the first dip of the normalised difference below it is the period
VOICED = 0.45  # a frame whose best dip stays above this is unvoiced (noise, silence)


def _frames(y: np.ndarray, sr: float, hop_s: float, n: int, width: int, span: int) -> np.ndarray:
    pad = np.pad(y, (width // 2, span))
    starts = (np.arange(n) * sr * hop_s).astype(int)
    return pad[starts[:, None] + np.arange(span)[None, :]]


def _difference(fr: np.ndarray, width: int, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN's cumulative-mean-normalised difference per frame and lag, and each frame's energy."""
    size = 1 << int(np.ceil(np.log2(fr.shape[1] + width)))
    cross = np.fft.irfft(np.conj(np.fft.rfft(fr[:, :width], size, axis=1)) * np.fft.rfft(fr, size, axis=1),
                         size, axis=1)[:, :lags]
    sq = np.cumsum(np.pad(fr * fr, ((0, 0), (1, 0))), axis=1)
    energy = sq[:, width] - sq[:, 0]
    d = energy[:, None] + (sq[:, width:width + lags] - sq[:, :lags]) - 2 * cross
    d[:, 0] = 0.0
    mean = np.cumsum(d[:, 1:], axis=1) / np.arange(1, lags)[None, :]
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(mean, 1e-12)
    return cmnd, energy


def _period(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the lag (in band bins, sub-bin by a parabola) of the first dip under ``DIP`` (else the deepest),
    and the depth of that dip."""
    rows = np.arange(band.shape[0])
    below = band < DIP
    k = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(band, axis=1))
    for _ in range(band.shape[1]):  # walk down to the bottom of the dip
        nxt = np.minimum(k + 1, band.shape[1] - 1)
        move = band[rows, nxt] < band[rows, k]
        if not move.any():
            break
        k = np.where(move, nxt, k)
    k = np.clip(k, 1, band.shape[1] - 2)
    a, b, c = band[rows, k - 1], band[rows, k], band[rows, k + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(np.abs(den) > 1e-12, den, 1.0), 0.0)
    return k + np.clip(shift, -0.5, 0.5), b


def fold_octaves(f0: np.ndarray, width: int = 21) -> np.ndarray:
    """Each voiced value moved by whole octaves to the one nearest the median of its ``width`` voiced neighbours."""
    idx = np.flatnonzero(f0 > 0)
    if len(idx) < 3:
        return f0
    octaves = np.log2(f0[idx])
    half = width // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(octaves, half, mode="edge"), 2 * half + 1)
    out = f0.copy()
    out[idx] = 2 ** (octaves - np.round(octaves - np.median(windows, axis=1)))
    return out


def f0_track(x: np.ndarray, sample_rate: int, hop_s: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, 0 where unvoiced; frame times in s) for float samples ``x``, one frame per ``hop_s``."""
    ds = max(1, int(sample_rate // 11000))
    y = resample_poly(x, 1, ds) if ds > 1 else np.asarray(x, dtype=np.float64)
    sr = sample_rate / ds
    width, lags, shortest = int(round(0.025 * sr)), int(sr / F0_MIN) + 1, int(sr / F0_MAX)
    n = int(len(x) / sample_rate / hop_s) + 1
    cmnd, energy = _difference(_frames(y, sr, hop_s, n, width, width + lags), width, lags)
    lag, depth = _period(cmnd[:, shortest:])
    voiced = (depth < VOICED) & (energy > 1e-3 * max(float(energy.max()), 1e-12))
    f0 = medfilt(np.where(voiced, sr / (shortest + lag), 0.0), 3)
    return fold_octaves(f0), np.arange(n) * hop_s
