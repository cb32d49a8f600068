"""Silence a TTS engine leaves where a person would not: after the last word of a chunk whose sentence goes on in
the next clip, and inside a sentence.

Piper ends every call as if it ended a sentence: 150-250 ms of silence after the last sound. A chunk cut inside
a sentence (a reply's short first chunk, the pieces of a long sentence) is followed by the rest of that sentence
in the next clip, which has its own ~50 ms lead-in; the two together made a hesitation at the seam (~0.3 s in
"Avatarchat is ... a real-time avatar"), and the first chunk's silence was rendered and encoded before the
person heard anything. Cut to ``PHRASE_TAIL_S``, the seam is a phrase break.

Kokoro, trained on Japanese, stops for 0.4-0.7 s of true silence (under -40 dB) between Korean phrases with no
clause mark between them (도서관은 | 아침 일찍, 박물관에 오래된 배에 | 관한 ...: 2-4 such stops in nine of ten
sentences), where its English stops for ~0.25 s at a comma and not at all without one. A listener hears a
hesitation, and a voice turn detector hears the end of a turn. ``shorten_pauses`` cuts every pause inside the
speech to ``PAUSE_MAX_S``.
"""

from __future__ import annotations

import numpy as np

from avatarchat.data import PhonemeTiming, Speech

PHRASE_TAIL_S = 0.08  # kept after the last sound: with the next clip's lead-in, a ~0.1-0.15 s phrase break
QUIET = 0.02  # of the speech's peak (-34 dB): below a weak word-final fricative ("is", "this")
PAUSE_MAX_S = 0.25  # Kokoro's own pause at an English comma
_FRAME_S = 0.01
_FADE_S = 0.005


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


def shorten_pauses(speech: Speech, max_s: float = PAUSE_MAX_S, quiet: float = QUIET) -> Speech:
    """``speech`` with every pause inside it (10 ms frames all under ``quiet`` times the peak, sound on both sides)
    cut to ``max_s``: the middle of the pause is taken out and the two ends meet in a 5 ms cross-fade. For speech
    without phoneme timings (Kokoro's); the same object when no pause is longer."""
    if speech.phonemes:
        raise ValueError("shorten_pauses keeps no phoneme timings")
    pcm, rate = speech.pcm, speech.sample_rate
    hop = max(1, int(round(_FRAME_S * rate)))
    frames = len(pcm) // hop
    if frames == 0:
        return speech
    level = np.abs(pcm[: frames * hop].astype(np.int32)).reshape(frames, hop).max(axis=1)
    peak = int(level.max())
    if peak == 0:
        return speech
    loud = np.flatnonzero(level > quiet * peak)
    keep = int(round(max_s / _FRAME_S))
    gaps = np.flatnonzero(np.diff(loud) - 1 > keep)  # quiet runs longer than ``keep`` frames, sound on both sides
    if len(gaps) == 0:
        return speech
    fade = max(1, int(round(_FADE_S * rate)))
    pieces, start = [], 0
    for g in gaps:
        first_quiet, last_quiet = loud[g] + 1, loud[g + 1] - 1
        cut_from = (first_quiet + keep // 2) * hop  # keep half of ``max_s`` after the sound, half before the next
        cut_to = (last_quiet + 1 - (keep - keep // 2)) * hop
        pieces.append((start, cut_from, cut_to))
        start = cut_to
    out = [pcm[: pieces[0][1] - fade].astype(np.float32)]
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    for i, (_, cut_from, cut_to) in enumerate(pieces):
        out.append(pcm[cut_from - fade: cut_from] * (1 - ramp) + pcm[cut_to - fade: cut_to] * ramp)
        end = pieces[i + 1][1] - fade if i + 1 < len(pieces) else len(pcm)
        out.append(pcm[cut_to: end].astype(np.float32))
    joined = np.round(np.concatenate(out)).astype(np.int16)
    return Speech(pcm=joined, sample_rate=rate)
