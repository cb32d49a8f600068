"""Tests for ``avatarchat.pipeline.clips.ClipStore``: clip paths and what housekeeping deletes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from avatarchat.pipeline.clips import ClipStore


def touch(path: Path, age_s: float) -> Path:
    """Create ``path`` last modified ``age_s`` seconds ago."""
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_path_is_the_clip_id_with_mp4_in_the_directory(tmp_path: Path) -> None:
    assert ClipStore(tmp_path, ttl_s=60).path("0123456789abcdef") == tmp_path / "0123456789abcdef.mp4"


@pytest.mark.parametrize("bad", ["", "../etc/passwd", "a/b", ".hidden"])
def test_path_refuses_what_is_not_a_plain_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        ClipStore(tmp_path, ttl_s=60).path(bad)


def test_old_clips_are_pruned(tmp_path: Path) -> None:
    """Clips older than the TTL go; younger ones stay; the count says how many went."""
    old = touch(tmp_path / "0000000000000000.mp4", age_s=120)
    new = touch(tmp_path / "1111111111111111.mp4", age_s=30)
    assert ClipStore(tmp_path, ttl_s=60).prune() == 1
    assert not old.exists() and new.exists()


def test_prune_removes_part_files_older_than_a_minute_and_keeps_fresh_ones(tmp_path: Path) -> None:
    """A .part older than a minute was left by an interrupted encode; a fresh one may be an encode running now.
    The one-minute rule holds whatever the clip TTL is, and other files are not touched."""
    stale = touch(tmp_path / "2222222222222222.mp4.part", age_s=90)
    running = touch(tmp_path / "3333333333333333.mp4.part", age_s=5)
    clip = touch(tmp_path / "4444444444444444.mp4", age_s=90)
    other = touch(tmp_path / "notes.txt", age_s=10_000)
    assert ClipStore(tmp_path, ttl_s=3600).prune() == 1
    assert not stale.exists()
    assert running.exists() and clip.exists() and other.exists()


def test_remove_partials_deletes_every_part_file_and_no_clip(tmp_path: Path) -> None:
    """At shutdown no encode runs: every .part goes, fresh or not; finished clips stay for their TTL."""
    parts = [touch(tmp_path / f"{i:016x}.mp4.part", age_s=age) for i, age in enumerate([0, 5, 500])]
    clip = touch(tmp_path / "ffffffffffffffff.mp4", age_s=0)
    assert ClipStore(tmp_path, ttl_s=3600).remove_partials() == 3
    assert not any(p.exists() for p in parts)
    assert clip.exists()


def test_prune_of_a_missing_directory_removes_nothing(tmp_path: Path) -> None:
    assert ClipStore(tmp_path / "not-yet", ttl_s=60).prune() == 0
