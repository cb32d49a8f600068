"""Which writing system a text uses: shared by voice choice, token estimates and the faq backend.

``dominant_script`` names the script most of a sentence's letters are in, so the voice router can tell whether
the chosen voice's language can read it (see ``languages.py``). Hangul, kana and CJK ideographs weigh three
letters each (one character is about a syllable), so "오늘 OK?" is Hangul and "The word 사랑 means love." Latin.
"""

from __future__ import annotations

import re

HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
# Hangul, kana and CJK ideographs: scripts written without spaces between words, about one token a character.
CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
# Basic and accented Latin letters (Latin-1, Extended-A/B, Vietnamese), without the signs × and ÷.
LATIN = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")

SCRIPTS: dict[str, re.Pattern[str]] = {
    "Latin": LATIN,
    "Hangul": HANGUL,
    "Kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
    "Han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "Cyrillic": re.compile(r"[\u0400-\u052f]"),
    "Greek": re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]"),
    "Armenian": re.compile(r"[\u0530-\u058f]"),
    "Hebrew": re.compile(r"[\u0590-\u05ff]"),
    "Arabic": re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]"),
    "Devanagari": re.compile(r"[\u0900-\u097f]"),
    "Bengali": re.compile(r"[\u0980-\u09ff]"),
    "Gurmukhi": re.compile(r"[\u0a00-\u0a7f]"),
    "Gujarati": re.compile(r"[\u0a80-\u0aff]"),
    "Oriya": re.compile(r"[\u0b00-\u0b7f]"),
    "Tamil": re.compile(r"[\u0b80-\u0bff]"),
    "Telugu": re.compile(r"[\u0c00-\u0c7f]"),
    "Kannada": re.compile(r"[\u0c80-\u0cff]"),
    "Malayalam": re.compile(r"[\u0d00-\u0d7f]"),
    "Sinhala": re.compile(r"[\u0d80-\u0dff]"),
    "Thai": re.compile(r"[\u0e00-\u0e7f]"),
    "Myanmar": re.compile(r"[\u1000-\u109f]"),
    "Georgian": re.compile(r"[\u10a0-\u10ff]"),
    "Ethiopic": re.compile(r"[\u1200-\u139f]"),
    "Cherokee": re.compile(r"[\u13a0-\u13ff\uab70-\uabbf]"),
}
SYLLABIC = {"Hangul": 3, "Kana": 3, "Han": 3}  # letters' worth of one character


def script_weights(text: str) -> dict[str, int]:
    """Weighted letter count per script present in ``text``. Ideographs in a text that also has kana are
    Japanese kanji, so they count as kana."""
    counts = {name: len(rx.findall(text)) * SYLLABIC.get(name, 1) for name, rx in SCRIPTS.items()}
    if counts["Kana"]:
        counts["Kana"] += counts.pop("Han")
    return {name: n for name, n in counts.items() if n}


def dominant_script(text: str) -> str | None:
    """The script most of the text's letters are in; None if it has no letters (digits, punctuation).
    On a tie the non-Latin script wins: a Latin word or two is usually a name or a loan inside the sentence."""
    weights = script_weights(text)
    if not weights:
        return None
    return max(weights, key=lambda name: (weights[name], name != "Latin"))
