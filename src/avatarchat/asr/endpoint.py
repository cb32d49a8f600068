"""How long a pause ends a spoken turn, chosen by what was said so far.

People end a turn sooner after a finished sentence ("What time is it?") than after a trailing "and..." or "um",
where they are only drawing breath. The speculative transcript of the turn (made at the pause) decides: finished
text ends the turn after the short hangover, unfinished text waits for the long one, anything else (or no
transcript yet) the normal one. Korean text is finished on Whisper's . ? or ! or a sentence ending (-다, -요,
-까) and unfinished otherwise, always on a particle: its verb comes last, and a phrase before a pause has none.
Pure text rules, no model: cheap enough to run at every VAD window.
"""

from __future__ import annotations

from typing import Literal

from avatarchat.writing import HANGUL

#: Words that promise more: a turn whose transcript ends on one of these is not over.
TRAILING = frozenset({
    "and", "or", "but", "so", "because", "cause", "then", "if", "when", "while", "that", "which", "who", "like",
    "um", "uh", "er", "erm", "hmm", "mm", "the", "a", "an", "to", "of", "with", "for", "my", "your", "is", "are",
    "was", "i", "i'm", "we", "you", "it's", "about", "in", "on", "at", "also", "well",
})

#: Korean particles and connective endings a word ends on mid-sentence ("치과에", "전화하고", "비가"): Korean puts
#: the verb last, so a turn whose last word ends on one of these is not over. (A noun that happens to end the
#: same way only waits the long hangover.)
KOREAN_TRAILING = ("고", "서", "면", "는데", "지만", "니까", "에", "에서", "를", "을", "은", "는", "이", "가", "의",
                   "와", "과", "도", "로", "랑", "하고", "께서")

#: Endings a Korean sentence closes on (polite and formal verb endings, and the one-word answers "네", "응"):
#: Whisper base sometimes leaves out the full stop after them.
KOREAN_FINAL = ("다", "요", "까", "죠", "네", "응")

Ending = Literal["finished", "unfinished", "unknown"]


def ending(text: str) -> Ending:
    """``finished``: a sentence ending in . ? or ! whose last word promises nothing more; ``unfinished``: ends on
    a trailing word, a comma or an ellipsis; ``unknown``: no text, or no punctuation to go by."""
    t = text.strip()
    if not t:
        return "unknown"
    if t.endswith(("...", "…", ",", "-", "—")):
        return "unfinished"
    last = t.rstrip(".?!").split()[-1].lower().strip("\"'()") if t.rstrip(".?!").split() else ""
    if last in TRAILING:
        return "unfinished"
    if HANGUL.search(last):
        # Korean puts the verb last: a phrase ending on a particle or a connective is part of a clause (Korean
        # speech pauses between phrases, the verb still to come); Whisper (base) ends a finished sentence with
        # . or ? ("...있나요?", "...입니다.") or at least on a sentence ending; anything else is unfinished.
        if last.endswith(KOREAN_TRAILING):
            return "unfinished"
        return "finished" if t[-1] in ".?!" or last.endswith(KOREAN_FINAL) else "unfinished"
    return "finished" if t[-1] in ".?!" else "unknown"
