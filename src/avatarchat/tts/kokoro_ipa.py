"""espeak-ng IPA -> Kokoro's phoneme symbols.

Kokoro-82M reads phonemes in misaki's alphabet (``vocab.json``, 114 symbols), not text. espeak-ng's IPA is close:
English needs a few rewrites (misaki writes diphthongs and affricates as one symbol, ``oʊ`` -> ``O``,
``dʒ`` -> ``ʤ``; American English has no length marks; espeak-ng's ``ɐ`` and ``ɚ`` are ``ə`` and ``əɹ``).
These are the rewrites misaki's own espeak fallback makes. Korean IPA is passed through, but for three symbols,
three vowels, espeak-ng's ``q`` and its aspirated stops (see ``KOREAN_REWRITES``). Symbols left outside the
vocabulary are dropped by ``tokens`` and named by ``unknown`` (the tests run every English espeak-ng phoneme
through it).

espeak-ng prints one line per clause and no punctuation; ``with_punctuation`` puts the text's clause marks back,
because Kokoro phrases (pauses, a question's rise) from them.
"""

from __future__ import annotations

import re

# Longest first: the digraphs before their letters. Only for English ("en-us").
ENGLISH_REWRITES: tuple[tuple[str, str], ...] = (
    ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɚ", "əɹ"),
    ("oʊ", "O"), ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"),
    ("dʒ", "ʤ"), ("tʃ", "ʧ"),
    ("r", "ɹ"), ("ɐ", "ə"), ("x", "k"), ("ç", "k"), ("ɬ", "l"), ("ʲ", ""), ("ː", ""),
    ("\u0329", ""),  # syllabic mark (button: bˈʌʔn̩): misaki writes ʔn
    ("e", "A"),  # a bare e (before ɹ in "air" is ɛ already); misaki has no plain e in English
)
# Korean IPA is Kokoro's, but for symbols outside its vocabulary and a few vowels and consonants Kokoro, trained on
# Japanese and English, says otherwise than Korean does. Outside the vocabulary: dark l, the voiced affricate
# (아버지 ɐbʌdʑi: Kokoro writes dʑ as one symbol, ʥ), and the hyphen espeak-ng writes after a tense consonant
# (날씨 nˈɐɫs-i), which Kokoro would drop anyway. The vowels: espeak-ng writes ㅓ as ʌ, which Kokoro says as
# English's strut vowel, nearer ㅏ (Whisper heard 버스 as 바스, 너무 as 나무): Korean's ㅓ is a back, half-open
# vowel, written ɔ here; ㅏ is an open [a], not English's central ɐ; ㅐ and ㅔ are one [e] in today's Korean.
# With the aspiration below, on twelve tuning sentences (not the benchmark's), three Kokoro voices: Whisper base CER
# 0.39 -> 0.29; then on the benchmark's ten held-out ones 0.32 -> 0.24, Distill-MOS unchanged (3.89 -> 3.95 for
# jf_nezumi).
KOREAN_REWRITES: tuple[tuple[str, str], ...] = (("ɫ", "l"), ("dʑ", "ʥ"), ("ʑ", "ʥ"), ("-", ""),
                                                  ("ʌ", "ɔ"), ("ɐ", "a"), ("ɛ", "e"))
# espeak-ng writes Korean ㄱ as ``q`` where it is neither tense nor aspirated (비가 pˈiqɐ, 언덕 ˈʌndʌq). Kokoro,
# trained on Japanese, reads q as something else (a uvular or a catch); Korean says [ɡ] between vowels and an
# unreleased [k] elsewhere. Rewritten so, Whisper base misread 3 Kokoro voices' Korean less: CER 0.38 -> 0.32 on
# ten held-out sentences (jf_nezumi 0.34 -> 0.29, jm_kumo 0.43 -> 0.33, jf_gongitsune 0.39 -> 0.33); q -> k
# everywhere gained little (0.37), nasal assimilation on top (합니다 hˌɐpnidˌɐ -> m) nothing (0.32).
_VOWEL = "ɐaeiouɯʌɛɔøyɪʊə"
KOREAN_VELAR = (re.compile(f"(?<=[{_VOWEL}])q(?=[ˈˌ]?[{_VOWEL}])"), "ɡ"), (re.compile("q"), "k")
# espeak-ng writes an aspirated stop as the stop and an h (커피 khˈʌphi, 김치 kimtʃhi), which Kokoro says as two
# sounds; written as one aspirated stop (kʰ), Kokoro says one. On the tuning sentences: alone 0.39 -> 0.38; after
# the ㅓ rewrite 0.38 -> 0.36; ㅏ and ㅐ then took them to 0.29.
KOREAN_ASPIRATED = ((re.compile("(?<=[ptkʃɕʧʨ])h"), "ʰ"),)
REWRITES = {"en": ENGLISH_REWRITES, "ko": KOREAN_REWRITES}
# Rewrites that depend on the neighbours, applied in order after ``REWRITES``.
IN_CONTEXT: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {"ko": KOREAN_VELAR + KOREAN_ASPIRATED}
_PATTERNS = {lang: (re.compile("|".join(re.escape(a) for a, _ in rules)), dict(rules))
             for lang, rules in REWRITES.items()}

CLAUSE_MARK = re.compile(r"[,.;:!?…]+(?=\s|$)")  # a mark that ends a clause (not the point of 3.5)
KOKORO_MARKS = frozenset(",.;:!?…")


def to_kokoro(ipa: str, language: str) -> str:
    """One clause of espeak-ng IPA in Kokoro's symbols (``REWRITES``, then ``IN_CONTEXT``, for its language; others
    unchanged)."""
    ipa = ipa.strip()
    if language in _PATTERNS:
        pattern, table = _PATTERNS[language]
        ipa = pattern.sub(lambda m: table[m.group(0)], ipa)
    for rule, replacement in IN_CONTEXT.get(language, ()):
        ipa = rule.sub(replacement, ipa)
    return ipa


def with_punctuation(clauses: list[str], text: str) -> str:
    """Clauses (espeak-ng's output lines) joined with the clause marks of ``text``, when they line up one to one;
    otherwise joined with commas and ended with a full stop, so Kokoro still pauses between them."""
    marks = [m.group(0)[-1] if m.group(0)[-1] in KOKORO_MARKS else "." for m in CLAUSE_MARK.finditer(text)]
    clauses = [c for c in clauses if c.strip()]
    if len(marks) not in (len(clauses), len(clauses) - 1):
        marks = [","] * (len(clauses) - 1) + ["."]
    marks += ["."] * (len(clauses) - len(marks))
    return " ".join(f"{c.strip()}{m}" for c, m in zip(clauses, marks, strict=True))


def tokens(phonemes: str, vocab: dict[str, int]) -> list[int]:
    """Token ids of the symbols Kokoro knows (others are dropped: see ``unknown``)."""
    return [vocab[c] for c in phonemes if c in vocab]


def unknown(phonemes: str, vocab: dict[str, int]) -> set[str]:
    """The symbols of ``phonemes`` that Kokoro's vocabulary lacks."""
    return {c for c in phonemes if c not in vocab and not c.isspace()}
