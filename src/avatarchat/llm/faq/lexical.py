"""Matching by wording (character bigrams), for the scripts MiniLM does not know.

MiniLM's vocabulary is English: it splits Hangul into jamo, knows few of them, and scores unrelated Korean
sentences as close as 0.9. So the faq backend matches a query containing Hangul, kana or CJK ideographs by
the cosine of character-bigram counts instead (spaces and punctuation dropped).
"""

from __future__ import annotations

import re
from collections import Counter

from avatarchat.writing import CJK

_NOT_WORD = re.compile(r"[\W_]+")


def has_cjk(text: str) -> bool:
    """Whether ``text`` has Hangul, kana or CJK ideographs, which MiniLM cannot tell apart."""
    return bool(CJK.search(text))


def bigrams(text: str) -> Counter[str]:
    """Counts of adjacent character pairs, lower-cased, spaces and punctuation dropped (one char: itself)."""
    s = _NOT_WORD.sub("", text.lower())
    return Counter(s[i : i + 2] for i in range(len(s) - 1)) if len(s) > 1 else Counter([s] if s else [])


def bigram_cosine(a: Counter[str], b: Counter[str]) -> float:
    """Cosine of two bigram count vectors; 0.0 when either is empty."""
    if not a or not b:
        return 0.0
    dot = sum(c * b[g] for g, c in a.items())
    return dot / (sum(c * c for c in a.values()) ** 0.5 * sum(c * c for c in b.values()) ** 0.5)
