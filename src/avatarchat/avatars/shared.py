"""Uploaded avatars every process can use (Redis mode): what is shared, and the source that travels.

A node that takes an upload stores its *source*: the checked frames re-encoded by us (a photo as PNG, a video
as MP4), never the bytes the user sent, so no metadata or hidden payload of the original travels, with the
landmarks it found in them (its registration). Any node or worker that needs the avatar decodes that source
with the same checks as an upload (``read_upload``) and takes the landmarks when they fit the frames (else it
detects them itself): a 10 s video is ready in the decoding time instead of seconds of face tracking. The
uploading node registers the decoded source too, so every process renders the same pixels with the same
landmarks (a video's MP4 is lossy) and no clip jumps against the idle loop made elsewhere.

The store (``distributed/avatar_store.py`` for Redis) keeps each avatar under its owning session, so an avatar
is found only through the session that uploaded it: another session's lookup misses, as for an id that never
existed (404).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from avatarchat.avatars.intake import Limits, Media

LANDMARKS = 478  # face-mesh points per frame (render/base.py: Avatar.frame_landmarks)


class SharedAvatars(Protocol):
    """Where the uploads of every session live when several processes serve them."""

    async def put(self, session: str, avatar_id: str, meta: dict, source: bytes, landmarks: bytes, preview: bytes,
                  most: int) -> bool:
        """Store an avatar for ``session`` unless it already holds ``most``; False: it does."""

    async def count(self, session: str) -> int:
        """How many avatars ``session`` holds."""

    async def metas(self, session: str) -> list[dict]:
        """What GET /avatars lists of ``session``'s avatars, oldest first."""

    async def exists(self, session: str, avatar_id: str) -> bool: ...

    async def source(self, session: str, avatar_id: str) -> tuple[dict, bytes, bytes | None] | None:
        """The avatar's meta, source and landmarks, or None when ``session`` has no such avatar."""

    async def preview(self, session: str, avatar_id: str) -> bytes | None: ...

    async def delete(self, session: str, avatar_id: str) -> bool: ...


def encode_source(media: Media, limits: Limits) -> bytes:
    """The source of an avatar as it is shared: the decoded frames as PNG (a photo, lossless) or MP4 (a video).
    Blocking; run it off the event loop."""
    if not media.is_video:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(media.frames[0]).save(buf, "PNG", compress_level=3)
        return buf.getvalue()
    from avatarchat.encode import encode_clip

    with tempfile.TemporaryDirectory(prefix="avatarchat-source-") as tmp:
        path = Path(tmp) / "source.mp4"
        encode_clip(path, list(media.frames), np.zeros(1, np.int16), 16000, limits.fps)
        return path.read_bytes()


def pack_landmarks(landmarks: np.ndarray) -> bytes:
    """(n, 478, 3) float32 landmarks as compressed ``.npz`` bytes (no pickle)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, landmarks=np.asarray(landmarks, np.float32))
    return buf.getvalue()


def unpack_landmarks(data: bytes | None, frames: np.ndarray) -> np.ndarray | None:
    """The stored landmarks if they are landmarks of ``frames`` (one finite (478, 3) set per frame); None means
    detect them again."""
    if not data:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            lm = np.asarray(z["landmarks"], np.float32)
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if lm.shape != (len(frames), LANDMARKS, 3) or not np.isfinite(lm).all():
        return None
    return lm
