"""``avatarchat.tts.espeak.EspeakTTS`` against the real ``espeak-ng`` binary (Korean first), and through the
real renderer: Korean speech from espeak must move the avatar's mouth like Piper's English does."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.errors import BackendError, BadRequest, ConfigError
from avatarchat.render import landmarks as L
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.settings import Settings
from avatarchat.tts import EspeakTTS, create_tts

KOREAN = "안녕하세요. 만나서 반갑습니다."


def syllables(text: str) -> int:
    """Hangul syllable blocks (U+AC00..U+D7A3): one spoken syllable each."""
    return len(re.findall(r"[\uac00-\ud7a3]", text))


def rms(speech: Speech) -> float:
    return float(np.sqrt(np.mean(speech.pcm.astype(np.float64) ** 2)))


def median_f0(speech: Speech) -> float:
    """Median pitch (Hz) of the 15 loudest 40 ms frames, by autocorrelation between 60 and 400 Hz."""
    x = speech.pcm.astype(np.float32)
    sr = speech.sample_rate
    n = int(0.04 * sr)
    frames = [x[i : i + n] - x[i : i + n].mean() for i in range(0, len(x) - n, n)]
    loud = sorted(frames, key=lambda f: float(np.mean(f * f)))[-15:]
    lo, hi = int(sr / 400), int(sr / 60)
    lags = [lo + int(np.argmax(np.correlate(f, f, "full")[n - 1 :][lo:hi])) for f in loud]
    return float(np.median([sr / lag for lag in lags]))


def espeak_children() -> list[int]:
    """Pids of live ``espeak-ng`` processes whose parent is this test process."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if comm == "espeak-ng" and int(fields[1]) == me and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def korean() -> Speech:
    return asyncio.run(EspeakTTS().synthesize(KOREAN))


def test_korean_sentence_is_speech_of_plausible_length(korean: Speech) -> None:
    assert korean.pcm.dtype == np.int16 and korean.pcm.ndim == 1
    assert korean.sample_rate == 22050
    assert np.abs(korean.pcm).max() > 5000 and rms(korean) > 500  # real speech, not silence
    per_syllable = korean.duration_s / syllables(KOREAN)
    assert 0.08 < per_syllable < 0.5, per_syllable
    assert korean.phonemes == []  # espeak-ng's CLI gives no phoneme timings for non-MBROLA voices


async def test_english_voice_and_settings_reach_the_command() -> None:
    router = create_tts(Settings(_env_file=None, tts_backend="espeak", espeak_voice="en-us"))
    assert router.default_voice == "espeak:en-us"
    tts = router.backends["espeak"]
    assert isinstance(tts, EspeakTTS)
    tts.warm_up()
    text = "Hello there, it is nice to meet you."
    normal = await tts.synthesize(text)
    assert rms(normal) > 500
    assert 0.8 < normal.duration_s < 6.0, normal.duration_s
    fast, slow = await asyncio.gather(EspeakTTS("en-us", rate=350).synthesize(text),
                                      EspeakTTS("en-us", rate=100).synthesize(text))
    assert slow.duration_s > 1.5 * normal.duration_s > 2.0 * fast.duration_s
    low, high = await asyncio.gather(EspeakTTS("en-us", pitch=10).synthesize(text),
                                     EspeakTTS("en-us", pitch=90).synthesize(text))
    assert median_f0(high) > 1.25 * median_f0(low), (median_f0(low), median_f0(high))
    # the per-call voice wins over the default
    ko = await tts.synthesize(KOREAN, voice="ko")
    assert ko.duration_s / syllables(KOREAN) > 0.08


async def test_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(BadRequest, match=r"espeak-ng has no voice 'xx-nope'.*espeak-ng --voices"):
        await EspeakTTS().synthesize("hello", voice="xx-nope")
    with pytest.raises(ConfigError, match="no voice 'zz'.*AVATARCHAT_ESPEAK_VOICE"):
        EspeakTTS(default_voice="zz").warm_up()  # a misconfigured server fails at start-up, not as a 422


async def test_missing_binary_says_how_to_install() -> None:
    tts = EspeakTTS(binary="espeak-ng-not-installed")
    with pytest.raises(BackendError, match=r"apt-get install espeak-ng"):
        await tts.synthesize("hello")
    with pytest.raises(ConfigError, match=r"apt-get install espeak-ng"):
        tts.warm_up()  # at start-up it is the configuration that is wrong


def test_voices_lists_languages() -> None:
    tts = EspeakTTS()
    voices = tts.voices()
    assert {"ko", "en-us", "ja"} <= set(voices)
    assert "Language" not in voices  # the header row is skipped
    assert tts.voices() == voices


async def test_cancelling_kills_the_process() -> None:
    """A barge-in cancels the TTS task; the espeak-ng child must not keep running (and eating a CPU)."""
    # ~1 s of synthesis; fits the stdin pipe
    task = asyncio.create_task(EspeakTTS().synthesize("가나다라마바사 " * 1500))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if espeak_children():
            break
    assert espeak_children(), "espeak-ng never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert espeak_children() == []


def test_korean_speech_moves_the_mouth(korean: Speech, renderer: MeshWarpRenderer, avatar) -> None:
    track = renderer.track(korean)
    assert track.open.max() > 0.5, track.open.max()
    k_open, k_shut = int(np.argmax(track.open)), int(np.argmin(track.open))
    assert track.open[k_shut] < 0.1
    wanted = {k_open, k_shut}
    frames = {}
    for k, frame in enumerate(renderer.render(avatar, korean)):
        if k in wanted:
            frames[k] = frame.astype(np.float32)
        if len(frames) == len(wanted):
            break
    lm = avatar.landmarks
    corners = [L.MOUTH_LEFT, L.MOUTH_RIGHT]
    x0, x1 = int(lm[corners, 0].min()), int(lm[corners, 0].max())
    y0, y1 = int(lm[L.OUTER_LIP_TOP, 1]), int(lm[L.OUTER_LIP_BOTTOM, 1])
    pad = (y1 - y0) // 2  # the opened jaw reaches below the rest lower lip
    box = np.s_[y0 - pad : y1 + pad, x0:x1]
    mouth_diff = np.abs(frames[k_open][box] - frames[k_shut][box]).mean()
    assert mouth_diff > 6.0, mouth_diff
    forehead = np.s_[: max(1, int(lm[L.FOREHEAD, 1])), :]  # above the face: must stay still
    assert np.abs(frames[k_open][forehead] - frames[k_shut][forehead]).mean() < 0.5
