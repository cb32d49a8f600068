"""A chunk cut inside a sentence ends on a phrase break: Piper's sentence-end silence cut down, its sound kept."""

from __future__ import annotations

import numpy as np
import pytest

from avatarchat.data import PhonemeTiming, Speech
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.silence import PAUSE_MAX_S, PHRASE_TAIL_S, QUIET, shorten_pauses, shorten_tail
from tests.voice_audio import pauses_s


def _tail_s(speech: Speech) -> float:
    """Seconds after the last sample above QUIET times the peak."""
    level = np.abs(speech.pcm.astype(np.int32))
    return (len(level) - 1 - int(np.flatnonzero(level > QUIET * level.max())[-1])) / speech.sample_rate


def test_piper_s_sentence_end_silence_is_cut_to_a_phrase_break_and_the_words_are_kept(tts: PiperTTS) -> None:
    for text in ("Avatarchat is", "I'm doing great,", "The first words of this"):
        speech = tts.synthesize_sync(text)
        assert _tail_s(speech) > PHRASE_TAIL_S + 0.02, (text, _tail_s(speech))  # Piper ends as a sentence ends
        short = shorten_tail(speech)
        assert abs(_tail_s(short) - PHRASE_TAIL_S) < 0.002, (text, _tail_s(short))
        n = len(short.pcm)
        assert np.array_equal(short.pcm, speech.pcm[:n])  # only silence went: every sample before is the same
        assert not np.any(np.abs(speech.pcm[n:].astype(np.int32)) > QUIET * np.abs(speech.pcm.astype(np.int32)).max())


def test_a_short_tail_silence_and_phoneme_timings_are_handled() -> None:
    rate = 16000
    tone = (8000 * np.sin(np.arange(rate // 2) * 0.2)).astype(np.int16)
    brief = Speech(pcm=np.concatenate([tone, np.zeros(rate // 50, np.int16)]), sample_rate=rate)
    assert shorten_tail(brief) is brief  # 20 ms after the sound: nothing to cut
    silent = Speech(pcm=np.zeros(rate, np.int16), sample_rate=rate)
    assert shorten_tail(silent) is silent
    timed = Speech(pcm=np.concatenate([tone, np.zeros(rate, np.int16)]), sample_rate=rate,
                   phonemes=[PhonemeTiming("a", 0.0, 0.5), PhonemeTiming("_", 0.5, 1.5)])
    cut = shorten_tail(timed)
    assert abs(cut.duration_s - (0.5 + PHRASE_TAIL_S)) < 0.002
    assert [(p.phoneme, p.end_s) for p in cut.phonemes] == [("a", 0.5), ("_", cut.duration_s)]


def test_a_long_pause_inside_speech_is_cut_to_the_longest_kept_and_short_ones_and_the_sound_are_untouched() -> None:
    rate = 24000
    tone = (8000 * np.sin(np.arange(int(0.3 * rate)) * 0.2)).astype(np.int16)
    gap = lambda s: np.zeros(int(s * rate), np.int16)  # noqa: E731
    speech = Speech(pcm=np.concatenate([tone, gap(0.6), tone, gap(0.15), tone, gap(0.4)]), sample_rate=rate)
    assert pauses_s(speech) == [0.6, 0.15]
    cut = shorten_pauses(speech)
    assert pauses_s(cut) == [PAUSE_MAX_S, 0.15]  # the trailing 0.4 s is not inside the speech: kept
    assert abs(cut.duration_s - (speech.duration_s - (0.6 - PAUSE_MAX_S))) < 0.011
    assert np.abs(cut.pcm.astype(np.int32)).max() == np.abs(speech.pcm.astype(np.int32)).max()
    assert np.abs(np.diff(cut.pcm.astype(np.int32))).max() <= np.abs(np.diff(speech.pcm.astype(np.int32))).max()
    assert np.array_equal(cut.pcm[-len(tone) - int(0.55 * rate):], speech.pcm[-len(tone) - int(0.55 * rate):])
    no_long = Speech(pcm=np.concatenate([tone, gap(0.2), tone]), sample_rate=rate)
    assert shorten_pauses(no_long) is no_long
    with pytest.raises(ValueError):
        shorten_pauses(Speech(pcm=speech.pcm, sample_rate=rate, phonemes=[PhonemeTiming("a", 0.0, 0.3)]))
