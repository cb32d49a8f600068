"""The avatar's loops: the idle loop, which the page plays between replies, and the listening loop, which it
plays while the person speaks; each a renderer's loop encoded once as an MP4.

They live beside the avatar's cached landmarks (``cache_dir/<avatar id>/``), so they are rebuilt exactly when the
avatar's id changes: for new content, or when ``CACHE_VERSION`` in render/avatar.py is bumped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from avatarchat.encode import encode_clip
from avatarchat.render.base import Avatar, Renderer


def build_idle_clip(renderer: Renderer, avatar: Avatar, cache_dir: Path) -> Path:
    """The avatar's idle loop as an MP4 (silent audio track), cached next to the avatar's landmarks."""
    return _build_loop(renderer.idle_frames, avatar, cache_dir / avatar.id / "idle.mp4", renderer.fps)


def build_listening_clip(renderer: Renderer, avatar: Avatar, cache_dir: Path) -> Path:
    """The avatar's listening loop as an MP4 (silent audio track), cached next to its idle loop."""
    return _build_loop(renderer.listening_frames, avatar, cache_dir / avatar.id / "listen.mp4", renderer.fps)


def _build_loop(frames_of: Callable[[Avatar], Iterator[np.ndarray]], avatar: Avatar, path: Path, fps: int) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = list(frames_of(avatar))
        # Web nodes and workers sharing a data dir may build it at the same moment: each encodes its own
        # file and renames it into place (atomic), so none finds another's half-written one.
        own = path.with_name(f"{path.stem}.{os.getpid()}.mp4")
        encode_clip(own, frames, np.zeros(1, np.int16), 16000, fps)
        os.replace(own, path)
    return path
