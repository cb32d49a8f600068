"""How the head, brows and eyes move, frame by frame: from the voice's prosody while speaking, a breathing loop
while idle, and an attentive loop while the person speaks (the listening loop).

People nod on stressed syllables and at the ends of phrases, drift slowly across a sentence, keep still in pauses,
lift their brows on pitch accents and knit them in questions, and keep their eyes on the listener with small
saccades. Most of the head's rotation is a random path travelled at the voice's pace (its linear amplitude), so the
head moves fastest on loud syllables and stops in pauses: its angular speed follows the speech envelope (issue 10's
r >= 0.3) rather than a clock. This module turns ``Prosody`` (render/prosody.py) into those curves; the renderer's
head warp (render/head_warp.py) draws them. Curves only: no pixels. Every clip curve is exactly zero on the clip's
first and last frame, so clips start and end on the rest frame the idle loop also starts on; randomness is seeded
from the audio, so the same speech renders the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.render.prosody import RANGE_DB, Prosody

EDGE_S = 0.4  # clips ease out of and back into the rest pose over this long
BEAT_AMPS = (2.0, 2.7, 1.5)  # degrees (std) of the voice-timed beat path in pitch, yaw, roll
BEAT_STEP = 1.25  # degrees per frame along that path at the loudest frame


@dataclass(frozen=True)
class HeadMotion:
    """Per-frame curves: angles in degrees (pitch > 0: chin down; yaw > 0: turns to the image's right; roll > 0:
    clockwise in the image), translation as a share of the face height, brow lift and knit 0..1, gaze in iris
    radii (x right, y down)."""

    pitch: np.ndarray
    yaw: np.ndarray
    roll: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    brow: np.ndarray
    knit: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray

    @classmethod
    def still(cls, n: int) -> HeadMotion:
        return cls(*(np.zeros(n) for _ in fields(cls)))

    def __len__(self) -> int:
        return len(self.pitch)

    def scaled(self, scale: float) -> HeadMotion:
        return HeadMotion(*(getattr(self, f.name) * scale for f in fields(self)))

    def pose(self, k: int) -> tuple[float, ...]:
        """Frame ``k``'s values in field order."""
        return tuple(float(getattr(self, f.name)[k]) for f in fields(self))

    def is_still(self, k: int, tol: float = 1e-4) -> bool:
        return all(abs(v) < tol for v in self.pose(k))


def kernel_sum(n: int, at: np.ndarray, weights: np.ndarray, tau: float, lead: int = 0) -> np.ndarray:
    """Sum of smooth bumps ``(t/tau) exp(1 - t/tau)`` (peak 1 at ``tau`` frames) starting ``lead`` frames before
    each index in ``at``."""
    out = np.zeros(n)
    t = np.arange(int(6 * tau) + 1, dtype=np.float64)
    bump = (t / tau) * np.exp(1 - t / tau)
    for k0, w in zip(at, weights, strict=True):
        s = int(k0) - lead
        lo, hi = max(0, s), min(n, s + len(bump))
        if hi > lo:
            out[lo:hi] += w * bump[lo - s : hi - s]
    return out


def smooth_noise(rng: np.random.Generator, n: int, sigma: float, lowcut: float | None = None) -> np.ndarray:
    """Gaussian-filtered noise with unit std (band-passed when ``lowcut`` is given)."""
    x = rng.standard_normal(n + 64)
    y = gaussian_filter1d(x, sigma, mode="wrap")
    if lowcut is not None:
        y = y - gaussian_filter1d(x, lowcut, mode="wrap")
    y = y[32 : 32 + n]
    return y / max(float(y.std()), 1e-9)


def edge_window(n: int, fps: int) -> np.ndarray:
    """1 inside the clip, easing (smoothstep) to exactly 0 on its first and last frame."""
    ramp = max(1.0, EDGE_S * fps)
    k = np.arange(n, dtype=np.float64)
    x = np.clip(np.minimum(k, n - 1 - k) / ramp, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def saccades(rng: np.random.Generator, n: int, fps: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Small jumps of gaze around the listener's face: a new fixation every 0.5-1.8 s, each reached in 2 frames."""
    gx, gy = np.zeros(n), np.zeros(n)
    k = int(rng.uniform(0.3, 1.0) * fps)
    x = y = 0.0
    while k < n:
        nx, ny = rng.uniform(-reach, reach), rng.uniform(-reach, reach) * 0.5
        gx[k], gy[k] = (x + nx) / 2, (y + ny) / 2
        gx[k + 1 :], gy[k + 1 :] = nx, ny
        x, y = nx, ny
        k += int(rng.uniform(0.5, 1.8) * fps)
    return gx, gy


def voice_timed_path(rng: np.random.Generator, pace: np.ndarray, amps: tuple[float, ...], step: float,
                     sigma: float = 6.0) -> list[np.ndarray]:
    """A smooth random path through len(amps) axes (std ``amps`` each), travelled at ``step * pace[k]`` per frame.

    The path is smooth noise re-parametrised by its arc length, so the head's speed along it is exactly the
    pace: it moves while the voice is loud and stops when it goes quiet, wherever on the path it happens to be.
    It starts and ends at 0. ``sigma``: the noise's correlation length in path samples."""
    travel = np.concatenate([[0.0], np.cumsum(step * pace[:-1])])
    need = float(travel[-1]) + 1.0
    m = 256
    while True:
        curve = np.stack([a * smooth_noise(rng, m, sigma) for a in amps], axis=1)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
        if arc[-1] >= need:
            break
        m *= 2
    ends = [np.interp([0.0, travel[-1]], arc, curve[:, j]) for j in range(len(amps))]
    frac = travel / max(float(travel[-1]), 1e-9)  # a bridge: the path also ends where it started
    return [np.interp(travel, arc, curve[:, j]) - a - frac * (b - a) for j, (a, b) in enumerate(ends)]


def speech_motion(p: Prosody, fps: int, seed: int, scale: float = 1.0) -> HeadMotion:
    """Head, brow and gaze curves for one utterance, ``scale`` times the default amplitude."""
    n = p.n
    if scale <= 0.0 or n < 3:
        return HeadMotion.still(n)
    rng = np.random.default_rng(seed)
    active = np.clip(gaussian_filter1d(p.loudness, 0.25 * fps) / max(float(p.loudness.max()), 1e-6) * 1.6, 0, 1)
    nods = kernel_sum(n, p.stresses, 0.4 + 0.6 * p.stress_weight, tau=0.1 * fps, lead=2)
    # Phrase-final nods start on the last syllable, not in the pause after it.
    ends = kernel_sum(n, p.phrase_ends, np.ones(len(p.phrase_ends)), tau=0.15 * fps, lead=5)
    end_side = kernel_sum(n, p.phrase_ends, rng.choice([-1.0, 1.0], len(p.phrase_ends)), tau=0.2 * fps, lead=5)
    pace = gaussian_filter1d(10 ** ((p.loudness - 1.0) * RANGE_DB / 20), 1.0)  # linear amplitude, 1 = the peak
    beat = voice_timed_path(rng, pace, BEAT_AMPS, BEAT_STEP)
    drift = [smooth_noise(rng, n, 0.7 * fps) * active for _ in range(4)]
    # The beat path carries most of the rotation; nods, phrase ends and drift stay small: their speed follows
    # kernels and a clock rather than the voice (larger nods took the speed-envelope r under 0.3).
    pitch = 1.0 * nods + 0.3 * ends + 0.1 * drift[0] + beat[0]
    yaw = 0.25 * drift[1] + beat[1]
    roll = 0.15 * drift[2] + beat[2] + 0.15 * end_side
    tx = 0.006 * drift[3]
    ty = -0.003 * gaussian_filter1d(active, 0.3 * fps)  # a slight lift of the head while talking
    accents = p.stress_weight * (np.array([p.pitch[max(0, s - 2) : s + 3].max(initial=0.0) for s in p.stresses]) > 1.0)
    brow = np.clip(kernel_sum(n, p.stresses, accents, tau=0.15 * fps, lead=2), 0.0, 1.0)
    knit = np.zeros(n)
    if p.question:
        tail = np.arange(n) >= n - int(1.0 * fps)
        knit = gaussian_filter1d(tail * 0.6, 0.2 * fps)
        brow = np.clip(brow + 0.5 * knit, 0.0, 1.0)
    gx, gy = saccades(rng, n, fps, reach=0.25)
    w = edge_window(n, fps)
    out = HeadMotion(pitch, yaw, roll, tx, ty, brow, knit, gx, gy)
    return HeadMotion(*(getattr(out, f.name) * w for f in fields(out))).scaled(scale)


def idle_motion(n: int, fps: int, scale: float = 1.0) -> HeadMotion:
    """An ``n``-frame loop of a listening head: two breaths, a slow sway and one look aside. Every curve is 0 at
    frame 0 and periodic over ``n``, so the loop starts on the rest frame and closes without a jump."""
    if scale <= 0.0 or n < 3:
        return HeadMotion.still(n)
    ph = 2 * np.pi * np.arange(n) / n
    breath = (1 - np.cos(2 * ph)) / 2  # two breaths per loop (an 8 s loop: 15 a minute)
    pitch = -0.35 * breath + 0.4 * np.sin(ph)
    yaw = 0.7 * np.sin(ph) + 0.3 * np.sin(2 * ph)
    roll = 0.6 * np.sin(ph + np.pi) * (1 - np.cos(ph)) / 2 * 2
    ty = -0.004 * breath
    tx = 0.002 * np.sin(ph)
    t = np.arange(n) / fps
    dur = n / fps
    look = np.clip(np.minimum(t - 0.4 * dur, 0.62 * dur - t) * fps / 2.0, 0.0, 1.0)  # 2-frame saccades out/back
    gaze_x = -0.7 * look
    zero = np.zeros(n)
    return HeadMotion(pitch, yaw, roll, tx, ty, zero, zero.copy(), gaze_x, 0.1 * look).scaled(scale)


def _bump(t: np.ndarray, start: float, length: float) -> np.ndarray:
    """A sin^2 hump from ``start`` over ``length`` seconds: 0 with zero slope at both ends, 1 in the middle."""
    x = np.clip((t - start) / length, 0.0, 1.0)
    return np.sin(np.pi * x) ** 2


def listening_motion(n: int, fps: int, scale: float = 1.0) -> HeadMotion:
    """An ``n``-frame loop of a head listening to the person: eyes on the camera (no look aside, no saccades),
    the head tilted a little to one side and leaning in over the loop, two slow nods, one brow raise, two
    breaths. Every curve is 0 at frame 0 and periodic over ``n``, so the loop starts on the rest frame (as
    clips and the idle loop do) and closes without a jump; the quick nods timed to the person's pauses are
    the page's (web/listening.js), on top of this loop."""
    if scale <= 0.0 or n < 3:
        return HeadMotion.still(n)
    ph = 2 * np.pi * np.arange(n) / n
    t = np.arange(n) / fps
    dur = n / fps
    breath = (1 - np.cos(2 * ph)) / 2
    lean = (1 - np.cos(ph)) / 2  # into the attentive pose and back, once a loop
    nods = _bump(t, 0.28 * dur, 0.7) + 0.8 * _bump(t, 0.64 * dur, 0.6)
    pitch = 0.5 * lean + 1.4 * nods - 0.3 * breath
    yaw = 0.35 * np.sin(ph)
    roll = 2.0 * lean  # the listener's head tilt
    ty = -0.003 * breath - 0.004 * lean
    brow = 0.7 * _bump(t, 0.42 * dur, 0.9)
    zero = np.zeros(n)
    return HeadMotion(pitch, yaw, roll, zero, ty, brow, zero.copy(), zero.copy(), zero.copy()).scaled(scale)
