"""``faq``: answers from a knowledge file of questions and answers, matched by meaning. Offline, CPU only.

The user's last message is embedded with all-MiniLM-L6-v2 (``embedder.py``) and compared, by cosine
similarity, with every phrasing of every question in the knowledge file (``knowledge.py``). The best entry's
answer is spoken when its score reaches ``threshold``; otherwise the avatar says the ``fallback`` line.

A query containing Hangul, kana or CJK ideographs is matched by wording instead (``lexical.py``): the cosine
of character-bigram counts must reach ``lexical_threshold`` (0.65). Korean questions therefore need their
likely wordings listed as ``- q:`` lines.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarchat.data import Message
from avatarchat.errors import BackendError
from avatarchat.llm.base import LLM
from avatarchat.llm.faq.embedder import MiniLMEmbedder
from avatarchat.llm.faq.knowledge import FaqEntry, bundled_knowledge, load_knowledge
from avatarchat.llm.faq.lexical import bigram_cosine, bigrams, has_cjk
from avatarchat.writing import HANGUL

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.55
LEXICAL_THRESHOLD = 0.65  # for Hangul/CJK queries; shared endings such as "무엇인가요" alone reach about 0.6
DEFAULT_FALLBACK = (
    "Sorry, I don't know about that yet. "
    "You can ask me about avatarchat: how it works, its voices, or how to set it up."
)
DEFAULT_FALLBACK_KO = "죄송해요, 그건 아직 잘 몰라요. 아바타챗이 어떻게 동작하는지, 목소리나 설치 방법을 물어봐 주세요."


@dataclass(frozen=True)
class Match:
    entry: FaqEntry | None  # None: nothing reached the threshold
    score: float
    phrasing: str  # the phrasing that scored best


class FaqLLM(LLM):
    """Answers the last user message from a knowledge file. Call ``warm_up`` in a thread to load the model early."""

    name = "faq"

    def __init__(
        self,
        path: Path | None = None,
        avatar_name: str = "Ava",
        threshold: float = DEFAULT_THRESHOLD,
        fallback: str = DEFAULT_FALLBACK,
        embedder: MiniLMEmbedder | None = None,
        fallback_ko: str = DEFAULT_FALLBACK_KO,
        lexical_threshold: float = LEXICAL_THRESHOLD,
    ) -> None:
        self.path = Path(path) if path is not None else bundled_knowledge()
        self.entries = load_knowledge(self.path, avatar_name)  # fail at start-up, not at the first question
        self.threshold = threshold
        self.lexical_threshold = lexical_threshold
        self.fallback = fallback.replace("{name}", avatar_name)
        self.fallback_ko = fallback_ko.replace("{name}", avatar_name)
        self._embedder = embedder or MiniLMEmbedder()
        self._phrasings = [(i, p) for i, e in enumerate(self.entries) for p in e.phrasings]
        self._bigrams = [bigrams(p) for _, p in self._phrasings]
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the embedding model and embed every question (blocking: about a second; run it in a thread)."""
        with self._lock:
            if self._matrix is None:
                self._matrix = self._embedder.encode([p for _, p in self._phrasings])

    def match(self, text: str) -> Match:
        """The entry whose phrasing is nearest in meaning to ``text`` (blocking)."""
        text = text.strip()
        if not text:
            return Match(None, 0.0, "")
        if has_cjk(text):  # MiniLM cannot tell Korean sentences apart; compare the wording instead
            query = bigrams(text)
            scores = np.array([bigram_cosine(query, b) for b in self._bigrams])
            threshold = self.lexical_threshold
        else:
            self.warm_up()
            assert self._matrix is not None
            scores = self._matrix @ self._embedder.encode([text])[0]
            threshold = self.threshold
        best = int(np.argmax(scores))
        score = float(scores[best])
        idx, phrasing = self._phrasings[best]
        return Match(self.entries[idx] if score >= threshold else None, score, phrasing)

    def answer(self, text: str) -> str:
        m = self.match(text)
        log.info("faq: %r -> %r (score %.3f)", text[:80], m.phrasing if m.entry else None, m.score)
        if m.entry is not None:
            return m.entry.answer
        return self.fallback_ko if HANGUL.search(text) else self.fallback  # answer in the language asked

    async def stream(self, history: list[Message]) -> AsyncIterator[str]:
        last = next((m.content for m in reversed(history) if m.role == "user"), "")
        try:
            reply = await asyncio.to_thread(self.answer, last)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy/tokenizer failures become a 502, not a crash
            raise BackendError(f"The faq backend failed on {last[:60]!r}: {exc}") from exc
        # Word by word, so the sentence pipeline sees a real stream.
        for i, word in enumerate(reply.split(" ")):
            yield word if i == 0 else " " + word

