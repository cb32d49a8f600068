"""Audio -> mouth track: shapes follow the sounds, from MFCC templates of the voice or from phoneme timings."""

from __future__ import annotations

import numpy as np
import pytest

from avatarchat.data import PhonemeTiming, Speech
from avatarchat.render.mouth_track import mouth_track
from avatarchat.render.visemes import SHAPES, VisemeTemplates, calibration_words


@pytest.fixture(scope="module")
def templates(tts) -> VisemeTemplates:
    words = calibration_words("piper:en_US-joe-medium")
    return VisemeTemplates.calibrate({s: tts.synthesize_sync(w) for s, w in zip(SHAPES, words, strict=True)})


def voiced_mean(track, values: np.ndarray) -> float:
    return float(values[track.open > 0.2].mean())


def test_spread_vowels_widen_and_rounded_vowels_round(tts, templates: VisemeTemplates) -> None:
    ee = mouth_track(tts.synthesize_sync("We see three green sheep eating cheese."), templates=templates)
    oo = mouth_track(tts.synthesize_sync("Who knew you would go home so soon?"), templates=templates)
    assert voiced_mean(ee, ee.wide) > 1.5 * voiced_mean(oo, oo.wide)
    assert voiced_mean(oo, oo.round) > voiced_mean(ee, ee.round)


def test_without_templates_only_the_jaw_moves(tts) -> None:
    track = mouth_track(tts.synthesize_sync("Hello there."))
    assert track.open.max() > 0.5 and not track.wide.any() and not track.round.any()


def test_phoneme_timings_drive_the_shape() -> None:
    """A TTS that gives timings: 'ee' then 'oo' then 'm', over a steady tone, gives wide, then round, then closed."""
    rate = 16000
    t = np.arange(int(1.2 * rate)) / rate
    pcm = (8000 * np.sin(2 * np.pi * 180 * t)).astype(np.int16)
    phonemes = [PhonemeTiming("i", 0.0, 0.4), PhonemeTiming("u", 0.4, 0.8), PhonemeTiming("m", 0.8, 1.2)]
    track = mouth_track(Speech(pcm=pcm, sample_rate=rate, phonemes=phonemes))
    ee, oo, mm = slice(2, 8), slice(12, 18), slice(23, 28)
    assert track.wide[ee].mean() > 0.5 > track.wide[oo].mean()
    assert track.round[oo].mean() > 0.5 > track.round[ee].mean()
    assert track.open[mm].mean() < 0.5 * track.open[oo].mean()  # lips pressed together for 'm'
