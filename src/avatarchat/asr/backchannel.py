"""Backchannels: the "uh-huh", "yeah" and "네" a listener says to keep the speaker going, and noise-only turns.

Whisper writes the same sound many ways ("Uh huh.", "Uh-huh.", "uhhuh", "Mm-hmm.", "MMM.", "Okay", "OK") and
marks what is not speech in brackets or asterisks ("(coughs)", "[laughter]", "*sighs*", "♪"). Both are
normalised here: lowercase, marks removed, hyphens made spaces, letters repeated three times or more squeezed
("mmmm" is "mm"), and a laugh written as syllables ("Ha ha ha", "A-ha-ha", "Oh-hoh-hoh", "Buh-huh-huh") is one
word, "haha", so the list of backchannels stays short. A turn is a backchannel when its words can be cut
into phrases of the list and nothing else ("yeah, yeah, okay" is; "yeah, but why?" is not). Pure text rules,
no model: cheap enough for every partial transcript.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: English and Korean backchannels and laughs, as people say them; each is normalised like the transcripts.
DEFAULT_BACKCHANNELS: tuple[str, ...] = (
    "uh huh", "uh-huh", "mm hmm", "mm-hmm", "mhm", "mm", "m", "hmm", "hm", "uh", "um", "ah", "oh", "ooh", "huh",
    "yeah", "yep", "yup", "yes", "okay", "ok", "right", "all right", "alright", "sure", "i see", "got it",
    "wow", "cool", "nice", "ha", "hah", "haha", "he", "hehe", "heh", "ho", "hoho", "hee",
    "네", "예", "응", "어", "아", "음", "그래", "그래요", "그렇구나", "아하", "맞아", "맞아요", "하하", "흠",
)

_MARKS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\*[^*]*\*|♪|♫")
_NOT_WORD = re.compile(r"[^\w\s']+")
_REPEATS = re.compile(r"(\w)\1{2,}")
# Two or more h-syllables ("ha", "hoh", "huh", "heh"), after an optional onset ("a", "oh", "buh"): a laugh.
_LAUGH = re.compile(r"\b(?:(?:a|ah|o|oh|uh|bu|buh|bwa|mwa)[\s-]+)?h[aeiou]+h?(?:[\s-]+h[aeiou]+h?)+\b"
                    r"|\b[a-z]?(?:h[aeiou]){2,}h?\b")  # ... or one word ("hahaha", "ahaha")


def words(text: str) -> list[str]:
    """``text`` as normalised words: noise marks dropped, punctuation and hyphens gone, long repeats squeezed."""
    t = _LAUGH.sub("haha", _MARKS.sub(" ", text.lower()))
    t = _NOT_WORD.sub(" ", t.replace("\u2019", "'"))
    t = _REPEATS.sub(r"\1\1", t)
    return [w.strip("'") for w in t.split() if w.strip("'")]


class Backchannels:
    """A list of backchannel phrases; ``is_backchannel``, ``has_content`` and ``noise_only`` judge a transcript."""

    def __init__(self, phrases: Iterable[str] = DEFAULT_BACKCHANNELS) -> None:
        self.phrases: set[tuple[str, ...]] = set()
        for p in phrases:
            w = tuple(words(p))
            if w:
                self.phrases.add(w)
                self.phrases.add(("".join(w),))  # "uh huh" is also written "uhhuh"
        self.longest = max((len(p) for p in self.phrases), default=1)

    def is_backchannel(self, text: str) -> bool:
        """Words, and every one of them part of a backchannel phrase."""
        w = words(text)
        return bool(w) and self._cover(w)

    def has_content(self, text: str) -> bool:
        """Some word beyond function words and one-word backchannels: "If I'm not." and "If mm-hmm." have none,
        "Tell me", "Wait" and any Hangul word do."""
        return any(w not in FUNCTION_WORDS and (w,) not in self.phrases for w in words(text))

    def _cover(self, w: list[str]) -> bool:
        ok = [True] + [False] * len(w)  # ok[i]: w[:i] can be cut into phrases
        for i in range(1, len(w) + 1):
            ok[i] = any(ok[i - n] and tuple(w[i - n: i]) in self.phrases for n in range(1, min(self.longest, i) + 1))
        return ok[-1]


#: Words that carry no request of their own: the start of a sentence ("If I'm", "Can you") is not yet an
#: interruption. Words of intent ("no", "what", "why", "wait", "stop") are not here.
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "if", "i", "i'm", "im", "i've", "i'd", "i'll", "it", "it's", "its", "is", "am", "are", "was",
    "were", "be", "been", "to", "of", "in", "on", "at", "by", "for", "with", "from", "and", "or", "but", "so", "as",
    "that", "this", "these", "those", "there", "then", "you", "he", "she", "we", "they", "me", "my", "your", "his",
    "her", "our", "their", "him", "us", "them", "do", "does", "did", "have", "has", "had", "can", "could", "would",
    "will", "shall", "should", "may", "might", "must", "not",
})


def noise_only(text: str) -> bool:
    """No words at all: empty, or only noise marks ("(coughs)", "[laughter]") and punctuation."""
    return not words(text)
