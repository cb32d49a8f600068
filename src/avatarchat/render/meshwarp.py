"""``meshwarp``: the default CPU lip-sync renderer.

Each output frame moves the jaw, lips and eyelids by warping only the lower-face and eye regions
piecewise-affinely over the face-mesh landmarks, and paints the inside of the mouth where the lips part.
Everything else is the untouched source pixels, and every clip starts and ends on the rest frame (frame 0),
which is also where the idle loop starts: hand-overs never jump. Registration (landmarks, cache) is shared by
all renderers and lives in render/avatar.py; blink and sway timing in render/motion.py.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from avatarchat.data import Speech
from avatarchat.errors import Cancelled
from avatarchat.render.avatar import register_avatar
from avatarchat.render.base import FPS, Avatar, Renderer, frame_count
from avatarchat.render.face_rig import EyeRig, MouthRig
from avatarchat.render.head_motion import HeadMotion, idle_motion, listening_motion, speech_motion
from avatarchat.render.head_warp import HeadWarp
from avatarchat.render.motion import blink_curve, blink_times, clip_path, edge_rested, phrase_blinks, ping_pong, sway
from avatarchat.render.mouth_interior import MouthInterior
from avatarchat.render.mouth_track import MouthTrack, mouth_track
from avatarchat.render.prosody import analyse
from avatarchat.render.visemes import SHAPES, VisemeTemplates, calibration_words
from avatarchat.render.warp import read_only

IDLE_S = 8.0  # length of a still picture's idle loop
IDLE_BLINKS_S = [1.6, 5.3]  # when it blinks in that loop
LISTEN_S = 8.0  # length of the listening loop
LISTEN_BLINKS_S = [2.3, 6.1]  # its blinks, clear of its nods and brow raise
MAX_RIGS = 600  # rigs kept (all avatars): a 24 s video avatar's frames at 25 fps, ~60 MB at 512 px


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
        self._landmarks = np.array(landmarks)
        read_only(self._landmarks)
        self._size = size
        self._head: HeadWarp | None = None
        self._head_lock = threading.Lock()

    @property
    def head(self) -> HeadWarp:
        """The head warp, built on first use (a still head never needs it)."""
        with self._head_lock:
            if self._head is None:
                self._head = HeadWarp(self._landmarks, self._size)
            return self._head

    def frame(self, open_: float, wide: float = 0.0, round_: float = 0.0, blink: float = 0.0,
              pose: tuple[float, ...] | None = None) -> np.ndarray:
        """The picture with the mouth and lids drawn at rest coordinates, then the whole head moved by ``pose``
        (HeadMotion field order), so the lips stay in sync on the moving head."""
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
        if pose is not None and any(abs(v) > 1e-4 for v in pose):
            out = self.head.apply(out, pose)
        return out


class MeshWarpRenderer(Renderer):
    name = "meshwarp"
    fps = FPS

    def __init__(self, cache_dir: Path, max_side: int = 512, motion_scale: float = 1.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_side = max_side
        self.motion_scale = float(motion_scale)  # 0: the still head of old (byte-identical frames)
        # Rigs by (avatar, frame): one per frame of a video avatar, so bounded (least recently used out first);
        # a rig costs ~15 ms to build and ~0.1 MB at 512 px, so a whole 10 s video's rigs fit.
        self._rigs: OrderedDict[tuple[str, int], Rig] = OrderedDict()
        self.max_rigs = MAX_RIGS
        self._templates: dict[str, VisemeTemplates] = {}
        self._lock = threading.Lock()

    # -- voice calibration (the VoiceCalibrated capability) -------------------------------------------------
    def calibration_words(self, voice: str | None) -> dict[str, str]:
        """What the voice should say once so its mouth shapes can be recognised (shape -> word)."""
        return dict(zip(SHAPES, calibration_words(voice), strict=True))

    def is_calibrated(self, voice: str | None) -> bool:
        return (voice or "") in self._templates

    def calibrate(self, voice: str | None, samples: dict[str, Speech]) -> None:
        templates = VisemeTemplates.calibrate(samples, fps=100)
        with self._lock:
            self._templates[voice or ""] = templates

    # -- registration -------------------------------------------------------------------------------------
    def register(self, media: Path) -> Avatar:
        """Frames and landmarks of an image or short video; the landmarks are cached by content hash."""
        return register_avatar(media, self.cache_dir, self.max_side)

    def rig(self, avatar: Avatar, index: int = 0) -> Rig:
        key = (avatar.id, index)
        with self._lock:
            rig = self._rigs.get(key)
            if rig is not None:
                self._rigs.move_to_end(key)
        if rig is None:
            built = Rig(avatar.frames[index], avatar.frame_landmarks[index])
            with self._lock:  # two threads may build the same rig: all of them use the first one cached
                rig = self._rigs.setdefault(key, built)
                while len(self._rigs) > self.max_rigs:
                    self._rigs.popitem(last=False)
        return rig

    def forget(self, avatar: Avatar) -> None:
        with self._lock:
            for key in [k for k in self._rigs if k[0] == avatar.id]:
                del self._rigs[key]

    # -- frames -------------------------------------------------------------------------------------------
    def idle_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
        """A seamless loop starting on the rest frame. A video avatar plays ping-pong over its own frames
        (its own blinks and motion); an image gets blinks at human intervals, breathing, a slow sway of the
        head and a look aside (with ``motion_scale`` 0: the old whole-frame sway only)."""
        if avatar.is_video:
            for i in ping_pong(len(avatar.frames)):
                yield avatar.frames[i]
            return
        rig = self.rig(avatar)
        n = int(round(IDLE_S * self.fps))
        blink = blink_curve(n, self.fps, starts_s=IDLE_BLINKS_S)
        if self.motion_scale <= 0.0:
            for k in range(n):
                frame = rig.frame(0.0, blink=float(blink[k]))
                yield sway(frame, k, n) if k else frame
            return
        motion = idle_motion(n, self.fps, self.motion_scale)
        for k in range(n):
            yield rig.frame(0.0, blink=float(blink[k]), pose=motion.pose(k))

    def listening_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
        """A seamless loop of the picture listening (render/head_motion.py's ``listening_motion``), starting on the
        rest frame. A video avatar, or a still head (``motion_scale`` 0), listens with its idle loop: a video's own
        recorded gaze and motion are all it has."""
        if not self.animated(avatar):
            yield from self.idle_frames(avatar)
            return
        rig = self.rig(avatar)
        n = int(round(LISTEN_S * self.fps))
        blink = blink_curve(n, self.fps, starts_s=LISTEN_BLINKS_S)
        motion = listening_motion(n, self.fps, self.motion_scale)
        for k in range(n):
            yield rig.frame(0.0, blink=float(blink[k]), pose=motion.pose(k))

    def animated(self, avatar: Avatar) -> bool:
        """Whether clips of this avatar get head motion: a video avatar keeps its own recorded motion."""
        return not avatar.is_video and self.motion_scale > 0.0

    def motion(self, avatar: Avatar, speech: Speech, n: int) -> HeadMotion:
        """Head, brow and gaze curves of a clip (all zero for a video avatar or ``motion_scale`` 0)."""
        if not self.animated(avatar):
            return HeadMotion.still(n)
        return speech_motion(analyse(speech, self.fps, n), self.fps, self._seed(speech), self.motion_scale)

    @staticmethod
    def _seed(speech: Speech) -> int:
        return zlib.crc32(speech.pcm[:4096].tobytes())

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
        animated = self.animated(avatar)
        if animated:
            prosody = analyse(speech, self.fps, n)
            motion = speech_motion(prosody, self.fps, self._seed(speech), self.motion_scale)
            blink = blink_curve(n, self.fps, phrase_blinks(speech.duration_s, self._seed(speech),
                                                           prosody.phrase_ends / self.fps))
        elif avatar.is_video:
            blink = np.zeros(n)  # a video avatar blinks by itself
        else:
            blink = blink_curve(n, self.fps, blink_times(speech.duration_s, self._seed(speech)))
        for k in range(n):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render cancelled")
            rig = self.rig(avatar, int(path[k]))
            yield rig.frame(float(track.open[k]), float(track.wide[k]), float(track.round[k]), float(blink[k]),
                            motion.pose(k) if animated else None)
