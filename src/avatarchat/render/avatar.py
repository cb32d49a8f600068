"""Avatar registration, shared by every renderer: load the media, find the face in each frame, smooth the
landmarks over time, and keep them on disk by the media's content hash.

Registration is not a renderer's job: it depends only on the media, so any backend gets the same ``Avatar``
(and the same cache entry) for the same picture, and a renderer's ``register`` just calls ``register_avatar``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatarchat.errors import NoFaceError
from avatarchat.render.base import Avatar
from avatarchat.render.landmarks import FaceMesh
from avatarchat.render.media import fit, load_media, scaled_size

log = logging.getLogger(__name__)

# Part of every avatar id, so also of the cache dir that holds its landmarks and idle clip (render/idle.py):
# bump it when landmarks or idle loops would come out differently.
CACHE_VERSION = 3


def register_avatar(media: Path, cache_dir: Path, max_side: int) -> Avatar:
    """Frames and landmarks of an image or short video, at most ``max_side`` px on the long side; the landmarks
    are cached under ``cache_dir/<avatar id>/`` and found again for the same content under any file name."""
    media = Path(media)
    return register_frames(load_media(media, max_side), cache_dir, str(media))


def register_frames(frames: np.ndarray, cache_dir: Path, what: str, first_face: np.ndarray | None = None) -> Avatar:
    """The avatar in already decoded frames (an upload checked by avatars/intake.py, or a file). ``first_face``:
    the landmarks of a still's one face when the caller has already found them (no second detection)."""
    avatar_id = content_id(frames)
    cache = Path(cache_dir) / avatar_id / "landmarks.npz"
    if cache.is_file():
        lm = np.load(cache)["landmarks"]
        log.info("avatar %s: landmarks from cache %s", what, cache)
    else:
        lm = first_face[None] if first_face is not None and len(frames) == 1 else detect_landmarks(frames, what)
        save_landmarks(cache, lm, what, frames)
        log.info("avatar %s: registered %d frame(s), landmarks cached in %s", what, len(frames), cache)
    return Avatar(id=avatar_id, frames=frames, frame_landmarks=lm.astype(np.float32))


def scaled(avatar: Avatar, max_side: int) -> Avatar:
    """``avatar`` at most ``max_side`` px on the long side, its landmarks moved with the pixels (x, y and z,
    which the face mesh gives in units of the width); the same avatar when it is that small already. Its id
    says the size, so renderers keep its rig apart from the full-size one's. A busy server renders clips from
    it (pipeline/speech.py); a picture of 512 px costs ~30 % less to render and encode at 384."""
    h, w = avatar.frames.shape[1:3]
    if max(h, w) <= max_side:
        return avatar
    frames = np.stack([fit(f, max_side) for f in avatar.frames])
    nh, nw = frames.shape[1:3]
    rw, rh = scaled_size(h, w, max_side)  # the crop to even sides after it moves nothing
    lm = avatar.frame_landmarks * np.array([rw / w, rh / h, rw / w], np.float32)
    return Avatar(id=f"{avatar.id}@{max(nh, nw)}", frames=frames, frame_landmarks=lm.astype(np.float32))


def content_id(frames: np.ndarray) -> str:
    """A stable id of the decoded frames (not the file), with the cache version."""
    h = hashlib.sha256(str(frames.shape).encode())
    h.update(frames.tobytes())
    return f"{h.hexdigest()[:16]}-v{CACHE_VERSION}"


def save_landmarks(cache: Path, lm: np.ndarray, source: str, frames: np.ndarray) -> None:
    """Write the landmarks atomically (a reader never sees half a file), with a small note of where they came from."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name("landmarks.tmp.npz")
    np.savez(tmp, landmarks=lm)
    tmp.replace(cache)
    (cache.parent / "meta.json").write_text(json.dumps(
        {"source": source, "frames": len(frames), "size": [frames.shape[2], frames.shape[1]],
         "version": CACHE_VERSION}))


def detect_landmarks(frames: np.ndarray, what: str) -> np.ndarray:
    """(n, 478, 3) landmarks: exactly one face in an image; a tracked, smoothed face over a video's frames."""
    if len(frames) == 1:
        with FaceMesh(static=True, max_faces=2) as mesh:
            return mesh.detect_one(frames[0], what=what)[None]
    return detect_video(frames, what)


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


def smooth_landmarks(lm: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    """Temporal smoothing of per-frame landmarks (n, 478, 3): removes detector jitter, keeps real motion."""
    if len(lm) < 3:
        return lm
    return gaussian_filter1d(lm, sigma=sigma, axis=0, mode="nearest").astype(np.float32)
