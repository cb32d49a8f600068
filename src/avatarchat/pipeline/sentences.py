"""Split a stream of text into speakable sentences as soon as each one is complete.

Ends a sentence at ``.``, ``!``, ``?``, ``…`` when followed by whitespace or the end of the stream, and at
their full-width forms (CJK text puts no space after them) at once.

A sentence becomes one clip, so a sentence that would take too long to say (over ~8 s) is cut at the last
clause boundary (``,``, ``;``, ``:``, spaced dashes, full-width ``，、；：``), failing that at a space, failing
that (a long URL, a digit string) after a ``/``, ``-`` or ``.``, or anywhere. "Too long" is measured in
estimated spoken seconds, not characters: a Korean syllable takes about as long to say as three Latin letters,
and a digit or a symbol in a URL is read out as a word of its own, so a character limit that suits English
lets a Korean sentence or a URL run to a 20 s clip.
"""

from __future__ import annotations

import re

from avatarchat.writing import HANGUL

_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)|([。！？]+)(\s*)")
_CLAUSE = re.compile(r"[,;:]\s|[，、；：]\s*|\s[-–—]\s")
_JOINT = re.compile(r"[/\-_.&?=#@]")  # inside a URL or a path: cut after one of these rather than mid-word
_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "e.g.", "i.e.", "etc."}
_NUMBERED = re.compile(r"\s*\d")  # "No. 5" is an abbreviation; "No." alone is an answer

MAX_SECONDS = 8.0
# Seconds per character, measured against the offline voices (Piper en_US-joe-medium, espeak-ng at rate 175):
# English ~14 letters/s (spaces included), Korean ~5.5-6 syllables/s, Japanese/Chinese ~3 characters/s; a digit
# of a long number ~0.45-0.55 s; a symbol such as "/" or "@" is a word ("slash", "at").
_LETTER_S = 0.07
_HANGUL_S = 0.18
_CJK_S = 0.33
_DIGIT_S = 0.5
_SYMBOL_S = 0.35
_PAUSE_S = 0.1  # punctuation that is a pause, not a word
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")  # kana and ideographs (Hangul apart)
_QUIET = set(".,!?;:…'\"()[]{}-–—。！？，、；：「」『』")


def char_seconds(ch: str) -> float:
    """Estimated time to say one character; whitespace costs nothing (the per-letter rate includes it)."""
    if ch.isspace():
        return 0.0
    if HANGUL.match(ch):
        return _HANGUL_S
    if _CJK.match(ch):
        return _CJK_S
    if ch.isdigit():
        return _DIGIT_S
    if ch.isalpha():
        return _LETTER_S
    return _PAUSE_S if ch in _QUIET else _SYMBOL_S


def spoken_seconds(text: str) -> float:
    """Estimated seconds a TTS voice takes to say ``text`` (within roughly ±20 % for the bundled voices)."""
    return sum(char_seconds(ch) for ch in text)


class SentenceSplitter:
    """Feeds on streamed text and gives back sentences of at most ``max_seconds`` (estimated) each.

    ``max_chars``, when given, is an extra ceiling in characters on top of the time limit.
    """

    def __init__(self, max_chars: int | None = None, *, max_seconds: float = MAX_SECONDS) -> None:
        self.max_chars = max_chars
        self.max_seconds = max_seconds
        self._buf = ""

    def feed(self, piece: str) -> list[str]:
        """Add streamed text; return the sentences it completed (possibly none)."""
        self._buf += piece
        out: list[str] = []
        while True:
            cut = self._find_end(self._buf, final=False)
            if cut is None:
                break
            out += self._emit(self._buf[:cut])
            self._buf = self._buf[cut:]
        while self._fits(self._buf) < len(self._buf):
            head, self._buf = self._split_long(self._buf)
            out += self._emit(head)
        return out

    def flush(self) -> list[str]:
        """End of stream: whatever is left is the last sentence."""
        rest, self._buf = self._buf, ""
        return self._emit(rest)

    def _find_end(self, text: str, final: bool) -> int | None:
        for m in _END.finditer(text):
            if m.group(3):  # full-width marks end a sentence with or without a space after them
                return m.end()
            if not m.group(2) and not final:
                continue  # "3." might become "3.5": wait for what follows
            word = text[: m.end(1)].rsplit(None, 1)[-1].lower()
            if word in _ABBREV or (word == "no." and _NUMBERED.match(text, m.end(1))):
                continue
            return m.end()
        return None

    def _emit(self, text: str) -> list[str]:
        out = []
        text = " ".join(text.split())
        while self._fits(text) < len(text):
            head, text = self._split_long(text)
            out.append(head.strip())
        if text.strip():
            out.append(text.strip())
        return [s for s in out if s]

    def _fits(self, text: str) -> int:
        """Length of the longest prefix of ``text`` within both limits (at least 1 character of a non-empty text)."""
        limit = len(text) if self.max_chars is None else min(len(text), self.max_chars)
        spent = 0.0
        for i, ch in enumerate(text[:limit]):
            spent += char_seconds(ch)
            if spent > self.max_seconds:
                return max(i, 1)
        return limit

    def _split_long(self, text: str) -> tuple[str, str]:
        """Cut a too-long ``text`` at the last clause boundary that fits, else at a space, else after a URL's ``/``,
    ``-`` or ``.``, else hard."""
        limit = self._fits(text)
        window = text[:limit]
        clauses = list(_CLAUSE.finditer(window))
        if clauses and clauses[-1].end() > limit // 3:
            cut = clauses[-1].end()
        else:
            space = window.rfind(" ")
            joints = [m.end() for m in _JOINT.finditer(window)]
            if space > limit // 3:
                cut = space + 1
            elif joints and joints[-1] > limit // 3:
                cut = joints[-1]
            else:
                cut = limit
        return text[:cut], text[cut:]


def split_sentences(text: str, max_chars: int | None = None, *, max_seconds: float = MAX_SECONDS) -> list[str]:
    """All sentences of a complete text, cut as ``SentenceSplitter`` cuts a stream."""
    s = SentenceSplitter(max_chars, max_seconds=max_seconds)
    return s.feed(text) + s.flush()
