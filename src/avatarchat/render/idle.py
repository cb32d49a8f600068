"""The idle clip: a renderer's idle loop encoded once as an MP4, which the page plays between replies.

It lives beside the avatar's cached landmarks (``cache_dir/<avatar id>/``), so it is rebuilt exactly when the
avatar's id changes: for new content, or when ``CACHE_VERSION`` in render/avatar.py is bumped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarchat.encode import encode_clip
from avatarchat.render.base import Avatar, Renderer


def build_idle_clip(renderer: Renderer, avatar: Avatar, cache_dir: Path) -> Path:
    """The avatar's idle loop as an MP4 (silent audio track), cached next to the avatar's landmarks."""
    path = cache_dir / avatar.id / "idle.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = list(renderer.idle_frames(avatar))
        encode_clip(path, frames, np.zeros(1, np.int16), 16000, renderer.fps)
    return path
