"""The silence a TTS engine leaves after the last word, cut down where the sentence goes on in the next clip.

Piper ends every call as if it ended a sentence: 150-250 ms of silence after the last sound. A chunk cut inside
a sentence (a reply's short first chunk, the pieces of a long sentence) is followed by the rest of that sentence
in the next clip, which has its own ~50 ms lead-in; the two together made a hesitation at the seam (~0.3 s in
"Avatarchat is ... a real-time avatar"), and the first chunk's silence was rendered and encoded before the
person heard anything. Cut to ``PHRASE_TAIL_S``, the seam is a phrase break.
"""

from __future__ import annotations

import numpy as np

from avatarchat.data import PhonemeTiming, Speech

PHRASE_TAIL_S = 0.08  # kept after the last sound: with the next clip's lead-in, a ~0.1-0.15 s phrase break
QUIET = 0.02  # of the speech's peak (-34 dB): below a weak word-final fricative ("is", "this")


def shorten_tail(speech: Speech, keep_s: float = PHRASE_TAIL_S, quiet: float = QUIET) -> Speech:
    """``speech`` with at most ``keep_s`` seconds after its last sound above ``quiet`` times its peak (the same
    object when it has no more than that, or no sound at all)."""
    level = np.abs(speech.pcm.astype(np.int32))
    peak = int(level.max()) if len(level) else 0
    if peak == 0:
        return speech
    end = int(np.flatnonzero(level > quiet * peak)[-1]) + 1 + int(round(keep_s * speech.sample_rate))
    if end >= len(level):
        return speech
    end_s = end / speech.sample_rate
    phonemes = [PhonemeTiming(p.phoneme, p.start_s, min(p.end_s, end_s)) for p in speech.phonemes if p.start_s < end_s]
    return Speech(pcm=speech.pcm[:end].copy(), sample_rate=speech.sample_rate, phonemes=phonemes)
