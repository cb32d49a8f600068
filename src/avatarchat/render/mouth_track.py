"""Speech audio -> a mouth track at the video frame rate, from the audio alone (so any TTS works).

``open`` follows the loudness envelope on a log scale relative to the utterance's own peak level, gated to
zero in silence. The shape (open / wide / round / closed) comes from phoneme timings when the TTS gives
them, else from MFCC templates of the voice (see ``visemes``). Everything is smoothed with centred
(zero-lag) kernels, a little wider for the shape than for the opening, which reads as coarticulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.data import Speech
from avatarchat.render.base import FPS, frame_count
from avatarchat.render.visemes import SHAPES, VisemeTemplates, mfcc_slots, phoneme_shapes

OPEN, WIDE, ROUND, CLOSED = (SHAPES.index(s) for s in ("open", "wide", "round", "closed"))


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth parameters in [0, 1]: jaw opening, lip spreading (wide), lip rounding."""

    open: np.ndarray
    wide: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.open)


def envelope_db(pcm: np.ndarray, sample_rate: int, n_frames: int, fps: int = FPS) -> np.ndarray:
    """RMS level (dBFS) of each video frame's own 40 ms slot (a wider window would open the mouth in the silent
    frame next to a word)."""
    x = pcm.astype(np.float32) / 32768.0
    hop = sample_rate / fps
    half = int(round(hop * 0.5))
    out = np.empty(n_frames, dtype=np.float32)
    for k in range(n_frames):
        c = int(round((k + 0.5) * hop))
        seg = x[max(0, c - half) : c + half]
        rms = float(np.sqrt(np.mean(seg * seg))) if len(seg) else 0.0
        out[k] = 20.0 * np.log10(rms + 1e-6)
    return out


def loudness(speech: Speech, n: int, fps: int) -> np.ndarray:
    """0 in silence, 1 at the utterance's loud vowels; log scale over the top 30 dB."""
    db = envelope_db(speech.pcm, speech.sample_rate, n, fps)
    peak = float(np.percentile(db, 95)) if n else -120.0
    floor = max(peak - 30.0, -60.0)
    level = np.clip((db - floor) / max(peak - floor, 1e-3), 0.0, 1.0)
    level[db < floor] = 0.0
    return level


def mouth_track(speech: Speech, fps: int = FPS, n_frames: int | None = None,
                templates: VisemeTemplates | None = None) -> MouthTrack:
    n = n_frames if n_frames is not None else frame_count(speech.duration_s, fps)
    level = loudness(speech, n, fps)
    if speech.phonemes:
        w = phoneme_shapes(speech.phonemes, n, fps)
        w[w.sum(axis=1) == 0, OPEN] = 1.0
    elif templates is not None:
        cep, _ = mfcc_slots(speech, n, fps)
        w = templates.weights(cep)
    else:
        w = np.zeros((n, len(SHAPES)), np.float32)
        w[:, OPEN] = 1.0
    if n > 1:
        w = gaussian_filter1d(w, sigma=0.9, axis=0, mode="nearest")
    # Closed shapes (m, b, p) press the lips together even while there is sound.
    gain = 1.0 * w[:, OPEN] + 0.6 * w[:, WIDE] + 0.7 * w[:, ROUND] + 0.2 * w[:, CLOSED]
    opening = level**1.3 * np.clip(gain / max(float(np.percentile(gain, 90)), 1e-3), 0.0, 1.2)
    opening = gaussian_filter1d(opening, sigma=0.7, mode="nearest") if n > 1 else opening
    opening[level == 0.0] = 0.0  # smoothing must not reopen a silent frame: lips rest in every pause
    voiced = np.sqrt(level)
    wide = voiced * w[:, WIDE]
    rnd = voiced * w[:, ROUND]
    if n > 1:
        wide = gaussian_filter1d(wide, sigma=1.0, mode="nearest")
        rnd = gaussian_filter1d(rnd, sigma=1.0, mode="nearest")
    return MouthTrack(open=np.clip(opening, 0, 1).astype(np.float32),
                      wide=np.clip(wide * 1.3, 0, 1).astype(np.float32),
                      round=np.clip(rnd * 1.3, 0, 1).astype(np.float32))
