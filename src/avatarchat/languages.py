"""Which language a voice speaks and which scripts each language can read.

A voice's language comes from its name (``de``, ``en-us``, ``en_US-joe-medium``, ``ko-KR-Neural2-A``: the part
before the first ``-``, ``_`` or ``+``). The voice router keeps the chosen voice for every sentence whose script
that language reads (German text to a German voice, Hangul to a Korean one), and only hands a sentence in
another script (Hangul to a German voice, Latin to a Korean one) to that script's default voice.

Languages written in Latin letters are the rule among espeak-ng's voices, so only languages written in other
scripts are listed; every other language code reads Latin. A voice whose name carries a ``latn`` tag
(``cmn-latn-pinyin``, ``fa-latn``) reads Latin as well as its language's own script.
"""

from __future__ import annotations

import re

_SCRIPT_LANGUAGES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("Hangul",): ("ko",),
    ("Han", "Kana"): ("ja",),
    ("Han",): ("cmn", "yue", "hak", "zh", "nan", "wuu"),
    ("Cyrillic",): ("ru", "uk", "be", "bg", "mk", "kk", "ky", "tt", "ba", "cv", "nog", "mn", "tg", "sah"),
    ("Cyrillic", "Latin"): ("sr",),
    ("Greek",): ("el", "grc"),
    ("Arabic",): ("ar", "fa", "ur", "ps", "sd", "ug", "ckb"),
    ("Hebrew",): ("he", "yi"),
    ("Devanagari",): ("hi", "mr", "ne", "kok", "sa", "mai"),
    ("Bengali",): ("bn", "as", "bpy"),
    ("Gurmukhi",): ("pa",),
    ("Gujarati",): ("gu",),
    ("Oriya",): ("or",),
    ("Tamil",): ("ta",),
    ("Telugu",): ("te",),
    ("Kannada",): ("kn",),
    ("Malayalam",): ("ml",),
    ("Sinhala",): ("si",),
    ("Thai",): ("th",),
    ("Myanmar",): ("my", "shn"),
    ("Georgian",): ("ka",),
    ("Armenian",): ("hy", "hyw"),
    ("Ethiopic",): ("am", "ti"),
    ("Cherokee",): ("chr",),
}
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    lang: frozenset(scripts) for scripts, langs in _SCRIPT_LANGUAGES.items() for lang in langs
}
LATIN_ONLY = frozenset({"Latin"})

# The language whose voice reads a script when nobody configured one (see VoiceRouter).
SCRIPT_LANGUAGE: dict[str, str] = {
    "Latin": "en", "Hangul": "ko", "Kana": "ja", "Han": "cmn", "Cyrillic": "ru", "Greek": "el", "Arabic": "ar",
    "Hebrew": "he", "Devanagari": "hi", "Bengali": "bn", "Gurmukhi": "pa", "Gujarati": "gu", "Oriya": "or",
    "Tamil": "ta", "Telugu": "te", "Kannada": "kn", "Malayalam": "ml", "Sinhala": "si", "Thai": "th",
    "Myanmar": "my", "Georgian": "ka", "Armenian": "hy", "Ethiopic": "am", "Cherokee": "chr",
}

ANY_LANGUAGE_BACKENDS = frozenset({"openai"})  # their voices speak whatever they are given


def voice_language(backend: str, voice: str) -> str | None:
    """The language a voice speaks, from its name; None for voices that speak any language (OpenAI's)."""
    if backend in ANY_LANGUAGE_BACKENDS:
        return None
    if backend == "kokoro":  # speakers (jf_alpha) speak English; jf_alpha+ko speaks the language after the +
        return voice.lower().rpartition("+")[2] if "+" in voice else "en"
    return re.split(r"[-_+]", voice.lower(), maxsplit=1)[0] or None


def language_of(voice_id: str | None) -> str | None:
    """The language of a voice id ``backend:voice`` (a bare name counts as the voice); None when unknown."""
    if not voice_id:
        return None
    backend, _, name = voice_id.rpartition(":")
    return voice_language(backend, name)


def language_scripts(language: str) -> frozenset[str]:
    """The scripts a language is read from (Latin for every language not listed above)."""
    return LANGUAGE_SCRIPTS.get(language, LATIN_ONLY)


def voice_scripts(backend: str, voice: str) -> frozenset[str] | None:
    """The scripts a voice can read; None for a voice that reads anything."""
    language = voice_language(backend, voice)
    if language is None:
        return None
    tags = re.split(r"[-_+]", voice.lower())[1:]
    return language_scripts(language) | (LATIN_ONLY if "latn" in tags else frozenset())
