"""The ``faq`` LLM backend: answers from a knowledge file, matched by meaning (MiniLM in numpy) or wording.

One module per job: ``knowledge`` parses the Markdown file, ``embedder`` runs all-MiniLM-L6-v2 without
torch, ``lexical`` matches Korean, Chinese and Japanese by character bigrams, and ``backend`` is the LLM that
puts them together. The names below are the package's public face (``from avatarchat.llm.faq import FaqLLM``).
"""

from avatarchat.llm.faq.backend import (
    DEFAULT_FALLBACK,
    DEFAULT_FALLBACK_KO,
    DEFAULT_THRESHOLD,
    LEXICAL_THRESHOLD,
    FaqLLM,
    Match,
)
from avatarchat.llm.faq.embedder import MiniLMEmbedder, bundled_model_dir
from avatarchat.llm.faq.knowledge import FaqEntry, bundled_knowledge, load_knowledge, parse_knowledge

__all__ = [
    "DEFAULT_FALLBACK",
    "DEFAULT_FALLBACK_KO",
    "DEFAULT_THRESHOLD",
    "LEXICAL_THRESHOLD",
    "FaqEntry",
    "FaqLLM",
    "Match",
    "MiniLMEmbedder",
    "bundled_knowledge",
    "bundled_model_dir",
    "load_knowledge",
    "parse_knowledge",
]
