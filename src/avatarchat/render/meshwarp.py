"""``meshwarp``: the default CPU lip-sync renderer.

Registration finds the face once per frame of the avatar (an image, or a short video) and caches the
landmarks on disk by the media's content hash. Each output frame then moves the jaw, lips and eyelids by
warping only the lower-face and eye regions piecewise-affinely over the face-mesh landmarks, and paints the
inside of the mouth where the lips part. Everything else is the untouched source pixels, and every clip
starts and ends on the rest frame (frame 0), which is also where the idle loop starts: hand-overs never jump.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.errors import Cancelled, NoFaceError
from avatarchat.render.base import FPS, Avatar, frame_count
from avatarchat.render.face_rig import EyeRig, MouthInterior, MouthRig
from avatarchat.render.landmarks import FaceMesh
from avatarchat.render.media import load_media
from avatarchat.render.mouth_track import MouthTrack, mouth_track
from avatarchat.render.visemes import SHAPES, VisemeTemplates, calibration_words
from avatarchat.render.warp import read_only
from avatarchat.data import Speech

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when idle loops or landmarks would render differently


class Rig:
    """Everything needed to move one source frame's face; built once per avatar frame and then shared, read-only,
    by every thread rendering that avatar: ``frame`` writes only to arrays it allocates itself."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        self.image = image.view()
        read_only(self.image)
        self.mouth = MouthRig(landmarks, size)
        self.eyes = EyeRig(landmarks, size)
        self.interior = MouthInterior(self.image, landmarks, self.mouth)

    def frame(self, open_: float, wide: float = 0.0, round_: float = 0.0, blink: float = 0.0) -> np.ndarray:
        src = self.image
        out = src.copy()
        if blink > 1e-3:
            eyes = self.eyes.dst_points(blink)
            self.eyes.warp.apply(src, eyes, out)
            self.eyes.paint_lashes(out, eyes, blink)
        if max(open_, abs(wide), abs(round_)) > 1e-3:
            dst = self.mouth.dst_points(open_, wide, round_)
            self.mouth.warp.apply(src, dst, out)
            self.interior.paint(out, dst)
        return out


def smooth_landmarks(lm: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    """Temporal smoothing of per-frame landmarks (n, 478, 3): removes detector jitter, keeps real motion."""
    if len(lm) < 3:
        return lm
    return gaussian_filter1d(lm, sigma=sigma, axis=0, mode="nearest").astype(np.float32)


def detect_video(frames: np.ndarray, what: str) -> np.ndarray:
    """Landmarks for every frame: the first frame must show exactly one face; frames where tracking drops
    the face borrow the nearest frame that has one."""
    with FaceMesh(static=True, max_faces=2) as still:
        first = still.detect_one(frames[0], what=f"the first frame of {what}")
    out = np.empty((len(frames), *first.shape), np.float32)
    out[0] = first
    found = np.zeros(len(frames), bool)
    found[0] = True
    with FaceMesh(static=False, max_faces=1) as track:
        track.detect_all(frames[0])
        for i in range(1, len(frames)):
            faces = track.detect_all(frames[i])
            if faces:
                out[i] = faces[0]
                found[i] = True
    if found.mean() < 0.8:
        raise NoFaceError(f"The face is lost in {100 * (1 - found.mean()):.0f}% of {what}; use a steadier video.")
    idx = np.nonzero(found)[0]
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(frames))), 0, len(idx) - 1)]
    out[~found] = out[nearest[~found]]
    return smooth_landmarks(out)


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


def edge_rested(track: MouthTrack) -> MouthTrack:
    """The first and last frame at rest (the idle loop's frame), the next ones eased in and out."""
    ease = np.ones(len(track), np.float32)
    ease[[0, -1]] = 0.0
    if len(track) > 3:
        ease[[1, -2]] = 0.6
    return MouthTrack(open=track.open * ease, wide=track.wide * ease, round=track.round * ease)


class MeshWarpRenderer:
    name = "meshwarp"
    fps = FPS

    def __init__(self, cache_dir: Path, max_side: int = 512) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_side = max_side
        self._rigs: dict[tuple[str, int], Rig] = {}
        self._templates: dict[str, VisemeTemplates] = {}
        self._lock = threading.Lock()

    # -- voice calibration ----------------------------------------------------------------------------------
    def calibration_words(self, voice: str | None) -> dict[str, str]:
        """What the voice should say once so its mouth shapes can be recognised (shape -> word)."""
        return dict(zip(SHAPES, calibration_words(voice)))

    def is_calibrated(self, voice: str | None) -> bool:
        return (voice or "") in self._templates

    def calibrate(self, voice: str | None, samples: dict[str, Speech]) -> None:
        templates = VisemeTemplates.calibrate(samples, fps=100)
        with self._lock:
            self._templates[voice or ""] = templates

    # -- registration -------------------------------------------------------------------------------------
    def register(self, media: Path) -> Avatar:
        """Frames and landmarks of an image or short video; the landmarks are cached by content hash."""
        media = Path(media)
        frames = load_media(media, self.max_side)
        h = hashlib.sha256(str(frames.shape).encode())
        h.update(frames.tobytes())
        avatar_id = f"{h.hexdigest()[:16]}-v{CACHE_VERSION}"
        cache = self.cache_dir / avatar_id / "landmarks.npz"
        if cache.is_file():
            lm = np.load(cache)["landmarks"]
            log.info("avatar %s: landmarks from cache %s", media.name, cache)
        else:
            if len(frames) == 1:
                with FaceMesh(static=True, max_faces=2) as mesh:
                    lm = mesh.detect_one(frames[0], what=str(media))[None]
            else:
                lm = detect_video(frames, str(media))
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name("landmarks.tmp.npz")
            np.savez(tmp, landmarks=lm)
            tmp.replace(cache)
            (cache.parent / "meta.json").write_text(json.dumps(
                {"source": str(media), "frames": len(frames), "size": [frames.shape[2], frames.shape[1]],
                 "version": CACHE_VERSION}))
            log.info("avatar %s: registered %d frame(s), landmarks cached in %s", media.name, len(frames), cache)
        return Avatar(id=avatar_id, frames=frames, frame_landmarks=lm.astype(np.float32), source=media)

    def rig(self, avatar: Avatar, index: int = 0) -> Rig:
        key = (avatar.id, index)
        with self._lock:
            rig = self._rigs.get(key)
        if rig is None:
            built = Rig(avatar.frames[index], avatar.frame_landmarks[index])
            with self._lock:  # two threads may build the same rig: all of them use the first one cached
                rig = self._rigs.setdefault(key, built)
        return rig

    # -- frames -------------------------------------------------------------------------------------------
    def idle_frames(self, avatar: Avatar, seconds: float = 8.0) -> Iterator[np.ndarray]:
        """A seamless loop starting on the rest frame. A video avatar plays ping-pong over its own frames
        (its own blinks and motion); an image gets blinks at human intervals and a slight breathing sway."""
        if avatar.is_video:
            n = len(avatar.frames)
            for i in list(range(n)) + list(range(n - 2, 0, -1)):
                yield avatar.frames[i]
            return
        rig = self.rig(avatar)
        n = int(round(seconds * self.fps))
        blink = blink_curve(n, self.fps, starts_s=[1.6, 5.3])
        h, w = avatar.image.shape[:2]
        for k in range(n):
            phase = 2 * np.pi * k / n
            dy = 0.35 * np.sin(2 * phase) * max(h, w) / 256
            angle = 0.25 * np.sin(phase)
            frame = rig.frame(0.0, blink=float(blink[k]))
            if k:
                m = cv2.getRotationMatrix2D((w / 2, h * 0.9), angle, 1.0)
                m[1, 2] += dy
                frame = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            yield frame

    def track(self, speech: Speech, voice: str | None = None) -> MouthTrack:
        """The mouth track a clip is rendered from (at rest on its first and last frame); shapes use the voice's
        calibration, or the first calibrated voice's if it has none."""
        with self._lock:  # a calibration in another thread may be adding a voice to the dict right now
            templates = self._templates.get(voice or "") or next(iter(self._templates.values()), None)
        return edge_rested(mouth_track(speech, self.fps, frame_count(speech.duration_s, self.fps), templates))

    def render(self, avatar: Avatar, speech: Speech, cancel: threading.Event | None = None,
               voice: str | None = None) -> Iterator[np.ndarray]:
        track = self.track(speech, voice)
        n = len(track)
        path = clip_path(n, len(avatar.frames))
        if avatar.is_video:
            blink = np.zeros(n)  # a video avatar blinks by itself
        else:
            seed = zlib.crc32(speech.pcm[:4096].tobytes())
            blink = blink_curve(n, self.fps, blink_times(speech.duration_s, seed))
        for k in range(n):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render cancelled")
            rig = self.rig(avatar, int(path[k]))
            yield rig.frame(float(track.open[k]), float(track.wide[k]), float(track.round[k]), float(blink[k]))
