"""``encode_clip``: MP4 that decodes with PyAV as 25 fps H.264 + AAC, tracks of equal length, faded audio edges,
and cancellation (or any failure) that leaves no file behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.encode import AUDIO_RATE, encode_clip
from avatarchat.errors import Cancelled
from avatarchat.render.base import FPS, frame_count
from tests.helpers import decode_clip

W, H = 128, 96


def frames(n: int) -> Iterator[np.ndarray]:
    """Smooth moving waves, so the encoder has real motion to code."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    for k in range(n):
        g = 128 + 90 * np.sin(x / 9.0 + k / 3.0) * np.cos(y / 13.0 - k / 5.0)
        yield np.stack([g, 255 - g, np.full_like(g, 40.0 + 4 * (k % 40))], axis=2).astype(np.uint8)


def tone(seconds: float, rate: int = 22050, amp: float = 0.5) -> np.ndarray:
    """A full-scale-ish 440 Hz tone from the first sample to the last (so any missing fade shows)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * 440 * t + 0.7) * 32767).astype(np.int16)


def rms_ms(audio: np.ndarray, start: int, ms: float = 1.0) -> float:
    seg = audio[start : start + int(AUDIO_RATE * ms / 1000)]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


def test_clip_decodes_as_25fps_h264_aac_with_equal_tracks(tmp_path: Path) -> None:
    seconds = 1.23  # not a whole number of frames: the audio is padded to the video's length
    n = frame_count(seconds, FPS)
    out = encode_clip(tmp_path / "clip.mp4", frames(n), tone(seconds), 22050, FPS)
    assert out == tmp_path / "clip.mp4" and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no .part left behind

    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        assert float(v.average_rate) == FPS
        assert (v.width, v.height) == (W, H)
        assert a.rate == AUDIO_RATE and a.codec_context.channels == 1
        v_dur = float(v.duration * v.time_base)
        a_dur = float(a.duration * a.time_base)
    assert abs(v_dur - n / FPS) < 1e-6
    assert abs(a_dur - v_dur) <= 1 / FPS, (a_dur, v_dur)

    clip = decode_clip(out.read_bytes())
    assert clip.fps == FPS
    assert clip.frames.shape == (n, H, W, 3)
    assert abs(clip.video_duration_s - clip.audio_duration_s) <= 1 / FPS
    # The decoded samples (AAC pads its last packet) still end within a frame of the video.
    assert abs(len(clip.audio) / clip.audio_rate - clip.video_duration_s) <= 1 / FPS
    # The picture survives the round trip (smooth moving waves, crf 23).
    src = np.stack(list(frames(n))).astype(np.float64)
    mse = np.mean((clip.frames.astype(np.float64) - src) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30


def test_audio_fades_in_and_out_at_the_clip_edges(tmp_path: Path) -> None:
    n = 30  # exactly 1.2 s of tone: no padding, so the clip's last samples are the tone's
    out = encode_clip(tmp_path / "clip.mp4", frames(n), tone(n / FPS), 22050, FPS)
    clip = decode_clip(out.read_bytes())
    audio = clip.audio
    end = int(round(n / FPS * AUDIO_RATE))
    level = rms_ms(audio, AUDIO_RATE // 2, 100)
    assert level > 0.2
    assert rms_ms(audio, 0) < 0.2 * level, "no fade-in: the clip starts at full level (a click)"
    assert abs(float(audio[0])) < 0.05
    assert rms_ms(audio, end - AUDIO_RATE // 1000) < 0.2 * level, "no fade-out: the clip ends at full level"
    # the fades are short: 10 ms in, the tone is at full level again
    assert rms_ms(audio, AUDIO_RATE // 100) > 0.8 * level


def test_sound_shorter_than_the_video_still_fades_out(tmp_path: Path) -> None:
    """frame_count rounds up, so the PCM usually stops short of the video: the fade belongs to the sound, not to
    the silence padded after it (else every such clip ends its sound on a step, a click)."""
    seconds = 1.23
    out = encode_clip(tmp_path / "clip.mp4", frames(frame_count(seconds, FPS)), tone(seconds), 22050, FPS)
    audio = decode_clip(out.read_bytes()).audio
    level = rms_ms(audio, AUDIO_RATE // 2, 100)
    sound_end = int(seconds * AUDIO_RATE)
    assert rms_ms(audio, sound_end - AUDIO_RATE // 1000) < 0.2 * level, "the tone stops dead where the PCM ends"


def test_cancel_mid_clip_raises_and_leaves_no_file(tmp_path: Path) -> None:
    cancel = threading.Event()
    seen = 0

    def cancelling() -> Iterator[np.ndarray]:
        nonlocal seen
        for k, f in enumerate(frames(50)):
            if k == 12:
                cancel.set()  # as a barge-in would, from another thread, while frames are flowing
            seen += 1
            yield f

    path = tmp_path / "clip.mp4"
    with pytest.raises(Cancelled):
        encode_clip(path, cancelling(), tone(2.0), 22050, FPS, cancel=cancel)
    assert 12 <= seen < 50, "encoding went on after the cancel"
    assert not path.exists()
    assert not path.with_name(path.name + ".part").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_render_cancelled_mid_clip_leaves_no_part_and_no_mp4(tmp_path: Path) -> None:
    """The renderer raises Cancelled from the frame iterator (a barge-in) after the encoder has written to
    ``clip.mp4.part``: the half-written file is removed and no clip appears."""
    path = tmp_path / "clip.mp4"
    part = path.with_name(path.name + ".part")
    seen_part = False

    def render() -> Iterator[np.ndarray]:
        nonlocal seen_part
        for k, f in enumerate(frames(200)):
            if k == 60:
                seen_part = part.exists()
                raise Cancelled("render cancelled")
            yield f

    with pytest.raises(Cancelled):
        encode_clip(path, render(), tone(8.0), 22050, FPS)
    assert seen_part, "the encoder had not written its .part file yet: the test would prove nothing"
    assert list(tmp_path.iterdir()) == []


def test_failing_frame_source_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[np.ndarray]:
        yield from frames(8)
        raise RuntimeError("renderer blew up")

    with pytest.raises(RuntimeError, match="blew up"):
        encode_clip(tmp_path / "clip.mp4", broken(), tone(1.0), 22050, FPS)
    assert list(tmp_path.iterdir()) == []


def test_rendered_clip_round_trips(tmp_path: Path, renderer, avatar) -> None:
    """The real renderer into the real encoder: every frame arrives, the clip opens on the avatar's rest frame."""
    rate = 16000
    t = np.arange(int(0.9 * rate)) / rate
    voiced = (t > 0.3) & (t < 0.7)
    pcm = (0.4 * np.sin(2 * np.pi * 150 * t) * voiced * 32767).astype(np.int16)
    speech = Speech(pcm=pcm, sample_rate=rate)
    out = encode_clip(tmp_path / "said.mp4", renderer.render(avatar, speech), pcm, rate, renderer.fps)
    clip = decode_clip(out.read_bytes())
    assert clip.frames.shape == (frame_count(speech.duration_s, renderer.fps), *avatar.image.shape)
    mse = np.mean((clip.frames[0].astype(np.float64) - avatar.image) ** 2)
    assert 10 * np.log10(255**2 / mse) > 32, "the first (silent) frame is not the avatar at rest"
