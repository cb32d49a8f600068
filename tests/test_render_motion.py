"""Head, brow and gaze motion driven by the voice (issue 10), checked from the OUTPUT: an independent face-mesh
pass over the rendered frames, rigid landmarks aligned to the rest frame with Kabsch (benchmarks/head_pose.py).
Real Piper speech; CPU only."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.render.base import FPS
from avatarchat.render.head_motion import idle_motion
from avatarchat.render.landmarks import FaceMesh
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.render.prosody import analyse
from avatarchat.settings import bundled_avatar
from avatarchat.tts.piper import PiperTTS
from benchmarks.head_pose import PoseSeries, pose_series

HOPPER = Path(__file__).resolve().parent / "data" / "grace_hopper.jpg"
TEXT = "The weather is lovely today. Shall we go for a walk in the park?"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse < 1e-10 else 10 * np.log10(255.0**2 / mse)


def measure(avatar, frames: list[np.ndarray]) -> PoseSeries:
    with FaceMesh(static=True, max_faces=1) as mesh:
        rest = mesh.detect_one(avatar.image)
        lms = []
        for f in frames:
            faces = mesh.detect_all(f)
            lms.append(faces[0] if faces else None)
    return pose_series(rest, lms)


@pytest.fixture(scope="module")
def speech(tts: PiperTTS) -> Speech:
    return tts.synthesize_sync(TEXT)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("motion-avatars")


def test_head_moves_in_speech_and_keeps_still_at_scale_0(speech: Speech, cache: Path, output_dir: Path) -> None:
    moving = MeshWarpRenderer(cache_dir=cache, motion_scale=1.0)
    still = MeshWarpRenderer(cache_dir=cache, motion_scale=0.0)
    avatar = moving.register(bundled_avatar())
    frames = list(moving.render(avatar, speech))
    pose = measure(avatar, frames)
    assert pose.found.all()
    rot = pose.rotation_std()
    assert (rot >= 0.5).sum() >= 2, f"rotation std per axis {rot}"
    assert pose.shift_std() >= 0.4, pose.shift_std()
    assert np.nanstd(pose.brow) >= 0.3, "brows do not move"

    still_pose = measure(avatar, list(still.render(avatar, speech)))
    # What the second pass sees of a still head is its noise floor (the moving mouth and lids jiggle its mesh).
    # (Piper samples its prosody, so the speech, and with it these figures, differ a little from run to run.)
    assert still_pose.rotation_std().sum() < 0.6 * rot.sum(), (still_pose.rotation_std(), rot)
    assert still_pose.shift_std() < 0.3 * pose.shift_std(), (still_pose.shift_std(), pose.shift_std())
    k = int(np.nanargmax(np.abs(pose.angles).sum(axis=1)))
    cv2.imwrite(str(output_dir / "motion-rest-moved.png"), np.concatenate([frames[0], frames[k]], axis=1)[:, :, ::-1])


def test_still_setting_renders_todays_frames(speech: Speech, cache: Path) -> None:
    """motion_scale 0 draws only the mouth and lids: outside the lower face and the eyes, every frame is the
    source picture, byte for byte."""
    still = MeshWarpRenderer(cache_dir=cache, motion_scale=0.0)
    avatar = still.register(bundled_avatar())
    frames = list(still.render(avatar, speech))
    top = int(avatar.landmarks[:, 1].min()) - 5  # above the brows nothing may change
    assert all(np.array_equal(f[:top], avatar.image[:top]) for f in frames)


@pytest.mark.parametrize("face", ["bundled", "hopper"])
def test_clips_and_idle_start_and_end_on_the_rest_frame_and_never_lose_the_face(
        face: str, speech: Speech, cache: Path) -> None:
    renderer = MeshWarpRenderer(cache_dir=cache, motion_scale=1.0)
    avatar = renderer.register(bundled_avatar() if face == "bundled" else HOPPER)
    frames = list(renderer.render(avatar, speech))
    assert np.array_equal(frames[0], avatar.image) and np.array_equal(frames[-1], avatar.image)
    idle = list(renderer.idle_frames(avatar))
    assert np.array_equal(idle[0], avatar.image)
    assert psnr(idle[-1], avatar.image) >= 40.0
    assert min(psnr(f, avatar.image) for f in frames) < 30.0, "the clip never left the rest pose"
    pose = measure(avatar, frames[::2] + idle[::4])
    assert pose.found.all(), f"face lost in {np.sum(~pose.found)} frames"


def test_a_loud_passage_moves_the_head_more_than_a_quiet_one(speech: Speech, cache: Path) -> None:
    pcm = speech.pcm.astype(np.float64)
    gap = np.zeros(int(0.3 * speech.sample_rate))
    mixed = np.concatenate([pcm, gap, pcm * 0.02])  # the same words, then 34 dB quieter
    loud_then_quiet = Speech(pcm=mixed.astype(np.int16), sample_rate=speech.sample_rate)
    renderer = MeshWarpRenderer(cache_dir=cache, motion_scale=1.0)
    avatar = renderer.register(bundled_avatar())
    pose = measure(avatar, list(renderer.render(avatar, loud_then_quiet)))
    speed = pose.angular_speed()
    half = int(len(pcm) / speech.sample_rate * FPS)
    edge = int(0.5 * FPS)  # leave out the eased clip edges
    loud, quiet = speed[edge:half], speed[half + edge : -edge]
    # Medians: a blink (random, ~0.3 s) jolts the face mesh's eye corners and reads as a burst of head speed;
    # with means, one blink in the quiet part brought the ratio from ~7 down to 2.4 (1 run in 7).
    assert np.median(loud) > 2.5 * np.median(quiet), (np.median(loud), np.median(quiet))


def test_prosody_finds_pitch_pauses_and_a_rising_end() -> None:
    sr = 16000
    t = np.arange(int(0.8 * sr)) / sr
    f0 = 120 * 2 ** (np.clip(t - 0.3, 0, None) / 0.5 * 5 / 12)  # level, then up 5 semitones
    tone = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * 8000
    pcm = np.concatenate([tone, np.zeros(int(0.5 * sr)), tone]).astype(np.int16)
    n = int(np.ceil(len(pcm) / sr * FPS))
    p = analyse(Speech(pcm=pcm, sample_rate=sr), FPS, n)
    assert p.voiced[2:15].all() and not p.voiced[22:30].any()
    assert p.pause[22:30].all() and len(p.phrase_ends) >= 1
    assert p.question
    assert abs(p.pitch[3] - p.pitch[18]) > 3.0  # the rise is seen in semitones


def test_idle_motion_is_a_loop_from_rest() -> None:
    m = idle_motion(200, FPS)
    assert m.is_still(0)
    for name in ("pitch", "yaw", "roll"):
        curve = getattr(m, name)
        assert abs(curve[-1] - curve[0]) < 0.05 and curve.std() > 0.1
