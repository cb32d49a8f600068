"""How long a pause ends a spoken turn, chosen by what was said so far.

People end a turn sooner after a finished sentence ("What time is it?") than after a trailing "and..." or "um",
where they are only drawing breath. The speculative transcript of the turn (made at the pause) decides: finished
text ends the turn after the short hangover, unfinished text waits for the long one, anything else (or no
transcript yet) the normal one. Pure text rules, no model: cheap enough to run at every VAD window.
"""

from __future__ import annotations

from typing import Literal

#: Words that promise more: a turn whose transcript ends on one of these is not over.
TRAILING = frozenset({
    "and", "or", "but", "so", "because", "cause", "then", "if", "when", "while", "that", "which", "who", "like",
    "um", "uh", "er", "erm", "hmm", "mm", "the", "a", "an", "to", "of", "with", "for", "my", "your", "is", "are",
    "was", "i", "i'm", "we", "you", "it's", "about", "in", "on", "at", "also", "well",
})

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
    return "finished" if t[-1] in ".?!" else "unknown"
