"""The faq backend's knowledge file: Markdown questions and answers, parsed into entries.

Kept apart from the matching so that the format (and its error messages, which name the bad line) can be read
and tested without loading a model. Format (the bundled ``knowledge/avatarchat.md`` is an example)::

    # Any title. Everything before the first "## " heading is ignored.

    ## What hardware does avatarchat need?
    - q: Does it need a GPU?
    - q: What are the system requirements?

    Avatarchat runs on an ordinary CPU. {name} needs no graphics card.

* each ``## `` heading is a question; the lines under it, up to the next ``## ``, are its answer;
* lines of the form ``- q: ...`` under a heading are other phrasings of the same question;
* blank lines separate paragraphs, which are joined into one spoken answer; backticks, ``**`` and ``__``
  are dropped, since the answer is read aloud; lines starting with ``# `` are ignored;
* ``{name}`` in questions and answers is replaced by the avatar's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from avatarchat.errors import ConfigError


def bundled_knowledge() -> Path:
    """The knowledge file shipped inside the package: questions and answers about avatarchat itself."""
    return Path(str(files("avatarchat").joinpath("knowledge/avatarchat.md")))


@dataclass(frozen=True)
class FaqEntry:
    question: str
    phrasings: tuple[str, ...]  # the question first, then its ``- q:`` alternatives
    answer: str


_ALT = re.compile(r"^[-*]\s*q:\s*(.*)$", re.IGNORECASE)
_MARKUP = re.compile(r"`|\*\*|__")


def parse_knowledge(text: str, source: str = "<knowledge>", name: str = "") -> list[FaqEntry]:
    """Markdown Q&A (format in the module docstring) -> entries. Raises ``ConfigError`` naming the bad line."""
    entries: list[FaqEntry] = []
    question: str | None = None
    q_line = 0
    alts: list[str] = []
    paragraphs: list[list[str]] = [[]]

    def finish() -> None:
        if question is None:
            return
        answer = " ".join(" ".join(p) for p in paragraphs if p).strip()
        if not answer:
            raise ConfigError(f"{source}:{q_line}: question {question!r} has no answer under it.")
        entries.append(FaqEntry(question, tuple([question, *alts]), answer))

    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().replace("{name}", name)
        if line == "##" or line.startswith("## "):
            finish()
            question, q_line, alts, paragraphs = line[2:].strip(), no, [], [[]]
            if not question:
                raise ConfigError(f"{source}:{no}: a '## ' heading needs the question after it.")
            continue
        if question is None or line.startswith("# ") or line == "#":
            continue  # preamble before the first question, or a title
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        alt = _ALT.match(line)
        if alt:
            if not alt.group(1).strip():
                raise ConfigError(f"{source}:{no}: '- q:' needs the alternative question after it.")
            alts.append(alt.group(1).strip())
            continue
        paragraphs[-1].append(_MARKUP.sub("", line))
    finish()
    if not entries:
        raise ConfigError(
            f"{source} has no questions: write each as a '## ' heading with its answer on the lines below it."
        )
    return entries


def load_knowledge(path: Path, name: str = "") -> list[FaqEntry]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"FAQ knowledge file {path} not found; set AVATARCHAT_FAQ_PATH to a Markdown file of "
            "'## question' headings with answers below them, or leave it unset for the bundled one."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"FAQ knowledge file {path} could not be read as UTF-8 text: {exc}") from exc
    return parse_knowledge(text, source=str(path), name=name)
