"""How far a transcript is from what was said: word and character edit distances, shared by the voice
benchmarks and the Korean voice-input tests."""

from __future__ import annotations


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def cer(reference: str, heard: str) -> float:
    """Character error rate over letters and digits (spaces and punctuation left out): Korean's measure."""
    ref, hyp = [c for c in reference if c.isalnum()], [c for c in heard if c.isalnum()]
    return edit_distance(ref, hyp) / max(1, len(ref))
