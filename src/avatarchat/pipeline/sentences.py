"""Split a stream of text into speakable sentences as soon as each one is complete.

Ends a sentence at ``.``, ``!``, ``?``, ``…`` when followed by whitespace or the end of the stream, and at
their full-width forms (CJK text puts no space after them) at once.

A sentence becomes one clip, so a sentence that would take too long to say (over ~8 s) is cut at the last
clause boundary (``,``, ``;``, ``:``, spaced dashes, full-width ``，、；：``), failing that at a space, failing
that (a long URL, a digit string) after a ``/``, ``-`` or ``.``, or anywhere. "Too long" is measured in
estimated spoken seconds, not characters: a Korean syllable takes about as long to say as three Latin letters,
and a digit or a symbol in a URL is read out as a word of its own, so a character limit that suits English
lets a Korean sentence or a URL run to a 20 s clip.

The first clip of a reply is what the person waits for, and its cost (TTS, render, encode) grows with its
length. So with ``first_seconds`` set, the reply's first sentence, when it would take more than about
``first_seconds`` + 0.4 s to say, is cut once: at a clause boundary whose head takes 0.5 s to ``first_seconds`` +
0.4 s to say (the one nearest ``first_seconds``), failing that at the space before a function word ("and",
"the", "to", ...) in that range, failing that at the space nearest ``first_seconds`` (or the first space after a
slow start such as a version number); never inside a word, a number or a URL, and never leaving less than 0.5 s
for the rest. Text without spaces or clause marks (Japanese,
Chinese) is not cut. The rest of the sentence becomes the next clip; later sentences are not cut this way,
unless ``growth`` is set.

On a busy server a short first chunk alone does not help: the whole sentence after it costs several times as
much as the chunk lasts, so with many sessions it is not ready when the chunk ends and the avatar stops
mid-sentence. With ``growth`` (say 1.2) every later chunk is cut, by the same rule, to about ``growth`` times the
one before it (1 s, 1.2 s, 1.44 s, ... up to the ``max_seconds`` limit), so each chunk's cost stays within what
the chunks already ready take to play: the buffer of speech grows geometrically instead of running dry. The
buffer itself grows only as fast as the server outpaces real time: 8 sessions on 2 cores each get their speech
made at ~1.1-1.3x real time, and a chunk that grows faster than that (1.5) is not ready when the one before ends. Busy,
the first chunk itself aims at ``busy_first_seconds`` (~0.7 s) instead of ``first_seconds``: when many sessions
ask at once, each one's first words wait for every first chunk made before them.

An idle server needs the same bound, only looser (``idle_growth``, say 4): a short first sentence ("Yes.", half a
second) followed by a long one (4 s of speech, ~0.9 s to voice, render and encode) stalled the avatar after its
first word. Such a sentence is cut so that its head lasts about ``idle_growth`` times what was said before it
(the same formula); sentences that fit are said whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from avatarchat.writing import HANGUL

_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)|([。！？]+)(\s*)")
_CLAUSE = re.compile(r"[,;:]\s|[，、；：]\s*|\s[-–—]\s")
_JOINT = re.compile(r"[/\-_.&?=#@]")  # inside a URL or a path: cut after one of these rather than mid-word
_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "e.g.", "i.e.", "etc."}
_NUMBERED = re.compile(r"\s*\d")  # "No. 5" is an abbreviation; "No." alone is an answer
# Words a clause or phrase starts with: the space before one is where a speaker may pause.
_FUNCTION_WORDS = {"and", "but", "or", "so", "because", "that", "which", "who", "where", "when", "while", "if",
                   "to", "of", "in", "on", "at", "for", "with", "from", "by", "about", "the", "a", "an", "as"}
FIRST_SECONDS = 1.0  # the reply's first clip: about this much speech (see the module docstring)
# ... and on a busy server (``growth``, while ``grow_if()``): 8 sessions asking at once each wait for every first
# chunk made before theirs; at ~0.7 s the English ones came out at ~0.93 s and no clip was late in two warm rounds
# of 8 (at ~1 s, 3 late in the same two rounds).
BUSY_FIRST_SECONDS = 0.7
# A first sentence up to FIRST_SECONDS + this is said whole. 0.8 let 1.6 s estimates through that Piper and Kokoro
# said in 1.8-2.2 s ("제 이름은 Ava입니다." 2.24 s): their first clips came ~250 ms after those of 1 s chunks.
_FIRST_SLACK_S = 0.4
_GROW_SLACK_S = 0.8  # with ``idle_growth``, a later chunk up to its target + this is said whole
# ... and with ``growth`` (busy): 0.8 let a 2 s second chunk through after a 0.65 s first one, which 8 sessions at
# once could not make before the first ended, even with a start-up buffer (see pipeline/lane.py).
_BUSY_SLACK_S = 0.4
_MIN_PIECE_S = 0.5  # neither side of a first-chunk cut is shorter than this

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


_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"')\]]*|[。！？]+)$")


def ends_sentence(text: str) -> bool:
    """Whether a chunk ends its sentence, rather than being cut at a clause or a word inside it."""
    return bool(_SENTENCE_END.search(text.rstrip()))


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

    def __init__(self, max_chars: int | None = None, *, max_seconds: float = MAX_SECONDS,
                 first_seconds: float | None = None, growth: float | None = None,
                 grow_if: Callable[[], bool] | None = None, idle_growth: float | None = None,
                 busy_first_seconds: float | None = None) -> None:
        """``first_seconds``: cut the first sentence to about this much speech (None: never); ``growth``: cut
        every later chunk to about this many times the one before it (None: later sentences whole), only while
        ``grow_if()`` says so when given (asked as each chunk is cut: whether the server is busy now);
        ``idle_growth``: the same, with this larger factor, while ``grow_if()`` says no (None: whole);
        ``busy_first_seconds``: with ``growth``, the first chunk's target while busy (None: ``first_seconds``)."""
        for g in (growth, idle_growth):
            if g is not None and g <= 1.0:
                raise ValueError("growth must be more than 1 (each chunk longer than the one before)")
        self.max_chars = max_chars
        self.max_seconds = max_seconds
        self.first_seconds = first_seconds
        self.growth = growth
        self.grow_if = grow_if
        self.idle_growth = idle_growth
        self.busy_first_seconds = busy_first_seconds
        self._first = first_seconds is not None  # the first chunk is still to come
        self._said_s = 0.0  # estimated seconds of the chunks given out so far (for ``growth``)
        self._first_s = 0.0  # ... and of the first of them
        self._buf = ""

    def feed(self, piece: str) -> list[str]:
        """Add streamed text; return the sentences it completed (possibly none)."""
        self._buf += piece
        out: list[str] = self._first_chunk(final=False)
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
        head = self._first_chunk(final=True)
        rest, self._buf = self._buf, ""
        return head + self._emit(rest)

    def _first_chunk(self, final: bool) -> list[str]:
        """The reply's first chunk, cut from its first sentence as soon as the cut is known (else nothing)."""
        if not self._first or not self._buf.strip():
            return []
        end = self._find_end(self._buf, final=final)
        complete = end is not None or final
        sentence = self._buf[:end] if end is not None else self._buf
        target = self.first_seconds or FIRST_SECONDS
        if self.busy_first_seconds is not None and self._busy():
            target = min(target, self.busy_first_seconds)
        cut = first_cut(sentence, target, complete=complete, slack_s=_FIRST_SLACK_S)
        if cut is None:
            if complete or spoken_seconds(sentence) > self.max_seconds:
                self._first = False  # said whole (short, or cut by the long-sentence rule)
            return []
        self._first = False
        head, self._buf = self._buf[:cut], self._buf[cut:]
        return self._emit(head)

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
        return self._grow([s for s in out if s])

    def _grow(self, pieces: list[str]) -> list[str]:
        """With ``growth``: cut each piece after the first so that chunks grow geometrically. Chunk k may last
        ``(growth - 1) * (speech before it) + first chunk``: for a geometric series that is ``growth`` times the
        chunk before, and it never shrinks after a sentence that happened to end short."""
        if self.growth is None:
            return pieces
        out = []
        for piece in pieces:
            while self._said_s and (rule := self._factor()) is not None \
                    and (target := (rule[0] - 1) * self._said_s + self._first_s) < self.max_seconds:
                factor, slack = rule
                cut = first_cut(piece, target, min_head_s=target / factor, slack_s=slack)
                if cut is None:
                    break
                head, piece = piece[:cut].strip(), piece[cut:].strip()
                out.append(head)
                self._said_s += spoken_seconds(head)
            out.append(piece)
            self._first_s = self._first_s or spoken_seconds(piece)
            self._said_s += spoken_seconds(piece)
        return out

    def _busy(self) -> bool:
        """Whether the busy rules apply to the chunk being cut now (``growth`` set, and ``grow_if()`` says so)."""
        return self.growth is not None and (self.grow_if is None or self.grow_if())

    def _factor(self) -> tuple[float, float] | None:
        """The growth factor for the chunk being cut now and the slack past its target that is said whole:
        ``growth`` while busy, else ``idle_growth`` (looser: a chunk is cut only when it must be)."""
        if self._busy():
            return self.growth, _BUSY_SLACK_S
        return None if self.idle_growth is None else (self.idle_growth, _GROW_SLACK_S)

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


def split_sentences(text: str, max_chars: int | None = None, *, max_seconds: float = MAX_SECONDS,
                    first_seconds: float | None = None, growth: float | None = None) -> list[str]:
    """All sentences of a complete text, cut as ``SentenceSplitter`` cuts a stream."""
    s = SentenceSplitter(max_chars, max_seconds=max_seconds, first_seconds=first_seconds, growth=growth)
    return s.feed(text) + s.flush()


def first_cut(sentence: str, target_s: float = FIRST_SECONDS, complete: bool = True,
              min_head_s: float = _MIN_PIECE_S, slack_s: float = _GROW_SLACK_S) -> int | None:
    """Where to cut a first sentence (or, with ``growth``, a later one) so that its head takes about
    ``target_s`` to say (None: do not cut), and at least ``min_head_s``; a sentence within ``target_s`` +
    ``slack_s`` is not cut. ``complete`` False: ``sentence`` is the start of one still being written; a cut is
    given only once enough of it follows the cut."""
    total = spoken_seconds(sentence)
    longest = target_s + slack_s
    if (complete and total <= longest) or (not complete and total < longest + _MIN_PIECE_S):
        return None
    clauses: list[tuple[float, int]] = []
    before_function: list[tuple[float, int]] = []
    spaces: list[tuple[float, int]] = []
    clause_ends = {m.end() for m in _CLAUSE.finditer(sentence)}
    spent = 0.0
    for i, ch in enumerate(sentence):
        spent += char_seconds(ch)
        cut = i + 1
        if spent > longest and (clauses or spaces):
            break
        if spent < max(min_head_s, _MIN_PIECE_S) or total - spent < _MIN_PIECE_S:
            continue
        if spent > longest:  # a slow start (digits, symbols): the first word boundary after it will do
            if ch == " " and cut < len(sentence) and not sentence[cut].isspace():
                return cut
            continue
        rest = sentence[cut:]
        if cut in clause_ends:
            clauses.append((abs(spent - target_s), cut))
        if ch == " " and rest and not rest[0].isspace():
            prev, nxt = sentence[:i].rsplit(None, 1)[-1] if sentence[:i].strip() else "", rest.split(None, 1)[0]
            if prev[-1:].isdigit() and nxt[:1].isdigit():
                continue  # "3 500": one number
            spaces.append((abs(spent - target_s), cut))
            if nxt.lower().strip("\"'(") in _FUNCTION_WORDS:
                before_function.append((abs(spent - target_s), cut))
    for found in (clauses, before_function, spaces):
        if found:
            return min(found)[1]
    return None
