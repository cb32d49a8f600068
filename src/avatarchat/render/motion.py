"""When the face moves, apart from speech: blinks, the idle loop's breathing sway, and which source frame of a
video avatar each clip frame starts from. Timing curves and whole-frame motion only; how a blink is drawn is
the face rig's business (render/face_rig.py), so any renderer can reuse these.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarchat.render.mouth_track import MouthTrack


def blink_curve(n: int, fps: int, starts_s: list[float]) -> np.ndarray:
    """Eyelid closure per frame: each blink closes in ~80 ms, holds ~40 ms, opens in ~160 ms."""
    shape = np.array([0.45, 1.0, 1.0, 0.7, 0.35, 0.1])
    out = np.zeros(n)
    for s in starts_s:
        k0 = int(round(s * fps))
        for j, v in enumerate(shape):
            if 0 <= k0 + j < n:
                out[k0 + j] = max(out[k0 + j], v)
    return out


def blink_times(duration_s: float, seed: int, margin_s: float = 0.5) -> list[float]:
    """Blinks every 2.5-5.5 s (people blink ~15 times a minute while speaking), none near the clip's edges."""
    rng = np.random.default_rng(seed)
    t, out = rng.uniform(1.0, 3.0), []
    while t < duration_s - margin_s - 0.3:
        if t > margin_s:
            out.append(float(t))
        t += rng.uniform(2.5, 5.5)
    return out


def phrase_blinks(duration_s: float, seed: int, phrase_ends_s: np.ndarray, margin_s: float = 0.5) -> list[float]:
    """Blinks of a speaking face: one just after most phrase ends (people blink as a phrase closes), the
    random ones of ``blink_times`` kept only where they are not within 1.5 s of one of those."""
    ends = [float(t) + 0.08 for t in phrase_ends_s if margin_s < t < duration_s - margin_s - 0.3]
    chosen: list[float] = []
    for t in ends:
        if not chosen or t - chosen[-1] >= 1.5:
            chosen.append(t)
    rest = [t for t in blink_times(duration_s, seed, margin_s) if all(abs(t - e) >= 1.5 for e in chosen)]
    return sorted(chosen + rest)


def sway(frame: np.ndarray, k: int, n: int) -> np.ndarray:
    """Frame ``k`` of an ``n``-frame idle loop of a still picture, breathing: a slight tilt about the chin and a
    bob of a fraction of a pixel, one cycle of each over the loop so it closes without a jump."""
    h, w = frame.shape[:2]
    phase = 2 * np.pi * k / n
    dy = 0.35 * np.sin(2 * phase) * max(h, w) / 256
    angle = 0.25 * np.sin(phase)
    m = cv2.getRotationMatrix2D((w / 2, h * 0.9), angle, 1.0)
    m[1, 2] += dy
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def ping_pong(n_frames: int) -> list[int]:
    """A video avatar's idle loop: its frames out and back, from frame 0 to just before frame 0 again."""
    return list(range(n_frames)) + list(range(n_frames - 2, 0, -1))


def clip_path(n: int, loop_len: int) -> np.ndarray:
    """Source-frame index for each of ``n`` clip frames: out along the video and back, ending on frame 0."""
    if loop_len <= 1:
        return np.zeros(n, int)
    period = 2 * (loop_len - 1)
    half = (n + 1) // 2
    k = np.arange(half) % period
    out = np.where(k < loop_len, k, period - k)
    back = out[: n - half][::-1]
    return np.concatenate([out, back]).astype(int)


def edge_rested(track: MouthTrack) -> MouthTrack:
    """The first and last frame at rest (the idle loop's frame), the next ones eased in and out."""
    ease = np.ones(len(track), np.float32)
    ease[[0, -1]] = 0.0
    if len(track) > 3:
        ease[[1, -2]] = 0.6
    return MouthTrack(open=track.open * ease, wide=track.wide * ease, round=track.round * ease)
