"""Split a stream of text into speakable sentences as soon as each one is complete.

Ends a sentence at ``.``, ``!``, ``?``, ``…`` when followed by whitespace or the end of the stream, and at
their full-width forms (CJK text puts no space after them) at once; splits sentences that are too long to speak in one clip at the last
clause boundary (``,``, ``;``, ``:``, dashes), or failing that at a space.
"""

from __future__ import annotations

import re

_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)|([。！？]+)(\s*)")
_CLAUSE = re.compile(r"[,;:，、]\s|\s[-–—]\s")
_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "e.g.", "i.e.", "etc."}
_NUMBERED = re.compile(r"\s*\d")  # "No. 5" is an abbreviation; "No." alone is an answer


class SentenceSplitter:
    def __init__(self, max_chars: int = 140) -> None:
        self.max_chars = max_chars
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
        if len(self._buf) > self.max_chars:
            head, self._buf = _split_long(self._buf, self.max_chars)
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
        while len(text) > self.max_chars:
            head, text = _split_long(text, self.max_chars)
            out.append(head.strip())
        if text.strip():
            out.append(text.strip())
        return [s for s in out if s]


def _split_long(text: str, max_chars: int) -> tuple[str, str]:
    window = text[:max_chars]
    clauses = list(_CLAUSE.finditer(window))
    if clauses and clauses[-1].end() > max_chars // 3:
        cut = clauses[-1].end()
    else:
        space = window.rfind(" ")
        cut = space + 1 if space > max_chars // 3 else max_chars
    return text[:cut], text[cut:]


def split_sentences(text: str, max_chars: int = 140) -> list[str]:
    s = SentenceSplitter(max_chars)
    return s.feed(text) + s.flush()
