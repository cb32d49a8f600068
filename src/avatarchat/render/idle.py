"""The idle clip: a renderer's idle loop encoded once as an MP4, which the page plays between replies.

It lives beside the avatar's cached landmarks (``cache_dir/<avatar id>/``), so it is rebuilt exactly when the
avatar's id changes: for new content, or when ``CACHE_VERSION`` in render/avatar.py is bumped.
"""

from __future__ import annotations

import os
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
        # Web nodes and workers sharing a data dir may build it at the same moment: each encodes its own
        # file and renames it into place (atomic), so none finds another's half-written one.
        own = path.with_name(f"idle.{os.getpid()}.mp4")
        encode_clip(own, frames, np.zeros(1, np.int16), 16000, renderer.fps)
        os.replace(own, path)
    return path
