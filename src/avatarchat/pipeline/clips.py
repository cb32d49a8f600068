"""The clip directory: where a clip's MP4 goes and what may be deleted from it.

A clip lives only as long as a page needs to fetch it (seconds after ``clip_ready``), so the directory is
pruned by age. The encoder writes ``<id>.mp4.part`` and renames it when complete; a ``.part`` file that is
still there a minute later was left by an encode that never finished (the process was killed mid-clip), since
a clip takes seconds to encode. Keeping these rules here, beside the pipeline that writes the files, leaves the
web layer with one call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

PART_SUFFIX = ".part"


class ClipStore:
    """Clips in ``directory``, deleted ``ttl_s`` seconds after they were written."""

    #: A ``.part`` file this old belongs to no running encode.
    part_max_age_s = 60.0

    def __init__(self, directory: Path, ttl_s: float) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s

    def path(self, clip_id: str) -> Path:
        """The final path of clip ``clip_id`` (the encoder writes ``<path>.part`` first)."""
        if not clip_id or Path(clip_id).name != clip_id or clip_id.startswith("."):
            raise ValueError(f"not a clip id: {clip_id!r}")
        return self.directory / f"{clip_id}.mp4"

    def prune(self) -> int:
        """Delete clips older than the TTL and ``.part`` files older than a minute; returns how many went."""
        now = time.time()
        gone = _remove_older(self.directory.glob("*.mp4"), now - self.ttl_s)
        return gone + _remove_older(self._partials(), now - self.part_max_age_s)

    def remove_partials(self) -> int:
        """Delete every ``.part`` file (at shutdown, when no encode is running); returns how many went."""
        return _remove_older(self._partials(), cutoff=float("inf"))

    def _partials(self) -> list[Path]:
        return list(self.directory.glob(f"*.mp4{PART_SUFFIX}"))


def _remove_older(paths: Iterable[Path], cutoff: float) -> int:
    """Unlink each file last modified before ``cutoff``; one that vanished meanwhile is not an error."""
    gone = 0
    for path in paths:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                gone += 1
        except FileNotFoundError:
            pass
    return gone
