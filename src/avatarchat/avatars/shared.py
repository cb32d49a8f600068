"""Uploaded avatars every process can use (Redis mode): what is shared, and the source that travels.

A node that takes an upload stores its *source*: the checked frames re-encoded by us (a photo as PNG, a video
as MP4), never the bytes the user sent, so no metadata or hidden payload of the original travels. Any node or
worker that needs the avatar decodes that source with the same checks as an upload (``read_upload``) and
registers it itself. The uploading node registers the decoded source too, so every process renders the same
pixels (a video's MP4 is lossy) and no clip jumps against the idle loop made elsewhere.

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


class SharedAvatars(Protocol):
    """Where the uploads of every session live when several processes serve them."""

    async def put(self, session: str, avatar_id: str, meta: dict, source: bytes, preview: bytes,
                  most: int) -> bool:
        """Store an avatar for ``session`` unless it already holds ``most``; False: it does."""

    async def count(self, session: str) -> int:
        """How many avatars ``session`` holds."""

    async def metas(self, session: str) -> list[dict]:
        """What GET /avatars lists of ``session``'s avatars, oldest first."""

    async def exists(self, session: str, avatar_id: str) -> bool: ...

    async def source(self, session: str, avatar_id: str) -> tuple[dict, bytes] | None:
        """The avatar's meta and source, or None when ``session`` has no such avatar."""

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
