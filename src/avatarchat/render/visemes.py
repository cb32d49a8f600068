"""Mouth shapes from the sound itself: MFCC templates of the TTS voice's own vowels and closures.

At start-up (or the first time a voice is used) the voice itself speaks a few calibration words, one per
shape: open ("ah"), wide ("ee"), round ("oo") and closed ("mm"), spelled as the voice's language writes those
sounds. Their mean MFCC vectors become templates; every 40 ms slot of real speech is then scored against them,
so any TTS (or recorded voice) drives shapes without phoneme timings. When the TTS does give phoneme timings,
``phoneme_shapes`` maps them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dct
from scipy.signal import resample_poly

from avatarchat.data import PhonemeTiming, Speech
from avatarchat.languages import language_of, language_scripts

SHAPES = ("open", "wide", "round", "closed")
ANALYSIS_RATE = 16000
N_MFCC = 13

# Calibration words, one per shape (same order as SHAPES), spelled so that each language's own reader says an open
# "a", a spread "i", a rounded "u" and a closing "m": English writes them "Ah / Ee / Ooh", while most Latin-script
# languages read "A / I / U" as those vowels (and "Ee" or "Ooh" as something else). Checked with `espeak-ng -x`:
# espeak spells "Mmm" out letter by letter ("em em em") outside English, so the closing word there is the language's
# shortest vowel + m ("Hm", "Um", "음"). Piper's English voice hums "Mmm".
CALIBRATION: dict[str, tuple[str, str, str, str]] = {
    "en": ("Ah.", "Ee.", "Ooh.", "Mmm."),
    "latin": ("A.", "I.", "U.", "Um."),  # es, it, pt, pl, cs, ro, hu, fi, id, sw, vi... and unlisted languages
    "de": ("Aah.", "Ih.", "Uh.", "Hm."),
    "fr": ("Ah.", "Hi.", "Ou.", "Hmm."),
    "nl": ("Aa.", "Ie.", "Oe.", "Hum."),
    "sv": ("A.", "I.", "O.", "Um."),  # Swedish and Norwegian "o" is a rounded u
    "tr": ("A.", "İ.", "U.", "Um."),  # a dotless "I" is not an i in Turkish
    "ko": ("아.", "이.", "우.", "음."),
    "ja": ("あ。", "い。", "う。", "ん。"),
    "zh": ("啊。", "衣。", "屋。", "嗯。"),
    "ru": ("А.", "И.", "У.", "Эм."),
    "uk": ("А.", "І.", "У.", "Ем."),
    "bg": ("А.", "И.", "У.", "Ъм."),
    "el": ("Αα.", "Ιι.", "Ου.", "Εμ."),
    "hi": ("आ।", "ई।", "ऊ।", "हम्म।"),
}
# Languages that share another's spellings.
CALIBRATION_FAMILY = {
    "nb": "sv", "no": "sv", "nn": "sv", "cmn": "zh", "yue": "zh", "hak": "zh", "be": "ru", "kk": "ru", "ky": "ru",
    "tt": "ru", "mk": "bg", "sr": "bg", "mr": "hi", "ne": "hi", "kok": "hi",
}


def calibration_words(voice: str | None) -> tuple[str, ...]:
    """The words ``voice`` (an id such as ``espeak:de``) says to calibrate: its language's spellings, the
    generic "A / I / U" for other Latin-script languages, English for voices of unknown language (OpenAI's,
    which read English spellings as English) and for scripts without spellings of their own."""
    lang = language_of(voice)
    if lang is None:
        return CALIBRATION["en"]
    lang = CALIBRATION_FAMILY.get(lang, lang)
    if lang in CALIBRATION:
        return CALIBRATION[lang]
    return CALIBRATION["latin"] if "Latin" in language_scripts(lang) else CALIBRATION["en"]


def _mel_filterbank(n_fft: int, rate: int, n_mels: int = 26, fmin: float = 80.0, fmax: float = 7600.0) -> np.ndarray:
    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.floor((n_fft + 1) * hz / rate).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(1, n_mels + 1):
        lo, c, hi = bins[m - 1], bins[m], bins[m + 1]
        for k in range(lo, c):
            fb[m - 1, k] = (k - lo) / max(c - lo, 1)
        for k in range(c, hi):
            fb[m - 1, k] = (hi - k) / max(hi - c, 1)
    return fb


_FB = _mel_filterbank(512, ANALYSIS_RATE)


def mfcc_slots(speech: Speech, n_slots: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per video-frame slot: mean MFCC (without c0) and log energy, from 25 ms windows every 10 ms."""
    x = speech.pcm.astype(np.float32) / 32768.0
    if speech.sample_rate != ANALYSIS_RATE:
        from math import gcd

        g = gcd(ANALYSIS_RATE, speech.sample_rate)
        x = resample_poly(x, ANALYSIS_RATE // g, speech.sample_rate // g).astype(np.float32)
    x = np.append(x[0] if len(x) else 0.0, x[1:] - 0.97 * x[:-1])  # pre-emphasis
    win, hop = 400, 160
    n_win = max(1, 1 + (len(x) - win) // hop) if len(x) >= win else 1
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    idx = np.arange(win)[None, :] + hop * np.arange(n_win)[:, None]
    frames = x[idx] * np.hamming(win)[None, :]
    power = np.abs(np.fft.rfft(frames, 512)) ** 2 / 512
    mel = np.log(power @ _FB.T + 1e-10)
    cep = dct(mel, type=2, axis=1, norm="ortho")[:, 1:N_MFCC]
    energy = np.log(power.sum(axis=1) + 1e-10)
    centres = (np.arange(n_win) * hop + win / 2) / ANALYSIS_RATE
    slot = np.clip((centres * fps).astype(int), 0, n_slots - 1)
    out = np.zeros((n_slots, N_MFCC - 1), np.float32)
    en = np.full(n_slots, -23.0, np.float32)
    counts = np.bincount(slot, minlength=n_slots)
    for d in range(N_MFCC - 1):
        out[:, d] = np.bincount(slot, weights=cep[:, d], minlength=n_slots) / np.maximum(counts, 1)
    has = counts > 0
    en[has] = (np.bincount(slot, weights=energy, minlength=n_slots) / np.maximum(counts, 1))[has]
    # Slots without an analysis window of their own borrow the nearest one.
    if not has.all() and has.any():
        src = np.nonzero(has)[0]
        nearest = src[np.clip(np.searchsorted(src, np.arange(n_slots)), 0, len(src) - 1)]
        out[~has] = out[nearest[~has]]
    return out, en


@dataclass(frozen=True)
class VisemeTemplates:
    """Mean MFCC vector per shape (rows in SHAPES order) and a per-dimension scale for distances."""

    means: np.ndarray
    scale: np.ndarray

    @classmethod
    def calibrate(cls, samples: dict[str, Speech], fps: int = 100) -> VisemeTemplates:
        """From one utterance per shape: the mean MFCC of its loudest half (the held sound, not its edges)."""
        means = []
        pooled = []
        for shape in SHAPES:
            sp = samples[shape]
            n = max(1, int(sp.duration_s * fps))
            cep, en = mfcc_slots(sp, n, fps)
            keep = en >= np.percentile(en, 50)
            means.append(cep[keep].mean(axis=0))
            pooled.append(cep[keep])
        allc = np.concatenate(pooled)
        scale = allc.std(axis=0) + 1e-3
        return cls(np.stack(means).astype(np.float32), scale.astype(np.float32))

    def weights(self, cep: np.ndarray, sharpness: float = 1.5) -> np.ndarray:
        """(n, 4) soft shape weights per slot: softmax of negative scaled distances to the templates."""
        d = (((cep[:, None, :] - self.means[None]) / self.scale) ** 2).mean(axis=2)
        logits = -sharpness * d
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        return w / w.sum(axis=1, keepdims=True)


# IPA (espeak / piper style) -> shape. Unlisted consonants keep the surrounding vowel's shape.
_PHONEME_SHAPE = {
    **{p: "open" for p in ["a", "ɑ", "æ", "ʌ", "ɐ", "aɪ", "aʊ", "ɔ", "ɒ", "e", "ɛ", "ə", "ɜ"]},
    **{p: "wide" for p in ["i", "ɪ", "eɪ", "j", "s", "z", "ʃ", "ʒ", "tʃ", "dʒ", "ɯ"]},
    **{p: "round" for p in ["u", "ʊ", "o", "oʊ", "w", "ɹ", "ɔɪ", "y", "ø"]},
    **{p: "closed" for p in ["m", "b", "p", "f", "v"]},
}


def phoneme_shapes(phonemes: list[PhonemeTiming], n_slots: int, fps: int) -> np.ndarray:
    """(n, 4) one-hot-ish shape weights from phoneme timings; silence and unknown phonemes weigh nothing."""
    w = np.zeros((n_slots, len(SHAPES)), np.float32)
    for ph in phonemes:
        key = ph.phoneme.strip("ˈˌː")
        shape = _PHONEME_SHAPE.get(key) or _PHONEME_SHAPE.get(key[:1])
        if shape is None:
            continue
        a = int(ph.start_s * fps)
        b = max(a + 1, int(np.ceil(ph.end_s * fps)))
        w[a:min(b, n_slots), SHAPES.index(shape)] += 1.0
    s = w.sum(axis=1, keepdims=True)
    return np.divide(w, s, out=np.zeros_like(w), where=s > 0)
