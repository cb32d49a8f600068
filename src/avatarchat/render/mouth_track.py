"""Speech audio -> a mouth track at the video frame rate, from the audio alone (so any TTS works).

``open`` follows the loudness envelope on a log scale relative to the utterance's own peak level,
gated to zero in silence, and smoothed with a centred (zero-lag) kernel so the mouth neither jitters
nor trails the sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.render.base import FPS, frame_count
from avatarchat.tts.base import Speech


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth parameters in [0, 1]: jaw opening, lip spreading (wide), lip rounding."""

    open: np.ndarray
    wide: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.open)


def envelope_db(pcm: np.ndarray, sample_rate: int, n_frames: int, fps: int = FPS) -> np.ndarray:
    """RMS level (dBFS) of each video frame's 40 ms slot, measured over a 60 ms window centred on it."""
    x = pcm.astype(np.float32) / 32768.0
    hop = sample_rate / fps
    half = int(round(hop * 0.75))
    out = np.empty(n_frames, dtype=np.float32)
    for k in range(n_frames):
        c = int(round((k + 0.5) * hop))
        seg = x[max(0, c - half) : c + half]
        rms = float(np.sqrt(np.mean(seg * seg))) if len(seg) else 0.0
        out[k] = 20.0 * np.log10(rms + 1e-6)
    return out


def mouth_track(speech: Speech, fps: int = FPS, n_frames: int | None = None) -> MouthTrack:
    n = n_frames if n_frames is not None else frame_count(speech.duration_s, fps)
    db = envelope_db(speech.pcm, speech.sample_rate, n, fps)
    peak = float(np.percentile(db, 95)) if n else -120.0
    floor = max(peak - 30.0, -60.0)
    level = np.clip((db - floor) / max(peak - floor, 1e-3), 0.0, 1.0)
    level[db < floor] = 0.0
    opening = gaussian_filter1d(level**1.3, sigma=0.7, mode="nearest") if n > 1 else level
    opening = np.clip(opening, 0.0, 1.0)
    zeros = np.zeros(n, dtype=np.float32)
    return MouthTrack(open=opening.astype(np.float32), wide=zeros, round=zeros.copy())
