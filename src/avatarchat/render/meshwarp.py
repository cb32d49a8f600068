"""``meshwarp``: the default CPU lip-sync renderer.

Registration finds the face once (cached on disk by the image's content hash). Each frame then moves the
jaw, lips and eyelids by warping only the lower-face and eye regions piecewise-affinely over the face-mesh
landmarks, and paints the inside of the mouth where the lips part. Everything else in the frame is the
untouched source pixels, which is why clips hand over to the idle loop without a seam.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from avatarchat.errors import BadRequest, Cancelled
from avatarchat.render.base import FPS, Avatar, frame_count
from avatarchat.render.face_rig import EyeRig, MouthInterior, MouthRig
from avatarchat.render.landmarks import FaceMesh
from avatarchat.render.mouth_track import MouthTrack, mouth_track
from avatarchat.render.visemes import SHAPES, VisemeTemplates, calibration_words
from avatarchat.tts.base import Speech

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
CACHE_VERSION = 1


def load_image(path: Path, max_side: int) -> np.ndarray:
    """RGB uint8, scaled down (never up) so the long side is at most ``max_side``, with even dimensions (H.264)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadRequest(f"Avatar {path} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise BadRequest(f"Avatar image {path} does not exist.")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadRequest(f"Avatar image {path} could not be decoded; is it a valid picture?")
    h, w = bgr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        bgr = cv2.resize(bgr, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = bgr.shape[:2]
    bgr = bgr[: h - h % 2, : w - w % 2]
    return np.ascontiguousarray(bgr[:, :, ::-1])


class Rig:
    """Everything per-avatar that frames are rendered from; built once per avatar."""

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.mouth = MouthRig(avatar.landmarks, avatar.size)
        self.eyes = EyeRig(avatar.landmarks, avatar.size)
        self.interior = MouthInterior(avatar.image, avatar.landmarks, self.mouth)

    def frame(self, open_: float, wide: float = 0.0, round_: float = 0.0, blink: float = 0.0,
              base: np.ndarray | None = None) -> np.ndarray:
        src = self.avatar.image if base is None else base
        out = src.copy()
        if blink > 1e-3:
            self.eyes.warp.apply(src, self.eyes.dst_points(blink), out)
        if max(open_, abs(wide), abs(round_)) > 1e-3:
            dst = self.mouth.dst_points(open_, wide, round_)
            self.mouth.warp.apply(src, dst, out)
            self.interior.paint(out, dst)
        return out


class MeshWarpRenderer:
    name = "meshwarp"
    fps = FPS

    def __init__(self, cache_dir: Path, max_side: int = 512) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_side = max_side
        self._rigs: dict[str, Rig] = {}
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
        media = Path(media)
        image = load_image(media, self.max_side)
        digest = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
        avatar_id = f"{digest}-v{CACHE_VERSION}"
        cache = self.cache_dir / avatar_id / "landmarks.npz"
        if cache.is_file():
            lm = np.load(cache)["landmarks"]
            log.info("avatar %s: landmarks from cache %s", media.name, cache)
        else:
            with FaceMesh(static=True, max_faces=2) as mesh:
                lm = mesh.detect_one(image, what=str(media))
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, landmarks=lm)
            tmp.replace(cache)
            (cache.parent / "meta.json").write_text(
                json.dumps({"source": str(media), "size": [image.shape[1], image.shape[0]], "version": CACHE_VERSION})
            )
            log.info("avatar %s: registered, %d landmarks cached in %s", media.name, len(lm), cache)
        return Avatar(id=avatar_id, image=image, landmarks=lm.astype(np.float32), source=media)

    def rig(self, avatar: Avatar) -> Rig:
        with self._lock:
            if avatar.id not in self._rigs:
                self._rigs[avatar.id] = Rig(avatar)
            return self._rigs[avatar.id]

    # -- frames -------------------------------------------------------------------------------------------
    def idle_frames(self, avatar: Avatar, seconds: float = 8.0) -> Iterator[np.ndarray]:
        """A seamless loop: blinks at human intervals and a slight breathing sway, starting and ending at rest."""
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
        """The mouth track; shapes use the voice's calibration, or the default voice's when it has none."""
        templates = self._templates.get(voice or "") or self._templates.get("")
        return mouth_track(speech, self.fps, frame_count(speech.duration_s, self.fps), templates)

    def render(self, avatar: Avatar, speech: Speech, cancel: threading.Event | None = None,
               voice: str | None = None) -> Iterator[np.ndarray]:
        rig = self.rig(avatar)
        track = self.track(speech, voice)
        for k in range(len(track)):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render cancelled")
            yield rig.frame(float(track.open[k]), float(track.wide[k]), float(track.round[k]))


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
