"""A chunk cut inside a sentence ends on a phrase break: Piper's sentence-end silence cut down, its sound kept."""

from __future__ import annotations

import numpy as np

from avatarchat.data import PhonemeTiming, Speech
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.silence import PHRASE_TAIL_S, QUIET, shorten_tail


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
