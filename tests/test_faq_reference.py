"""The numpy MiniLM against sentence-transformers' own output, stored, so the check runs without torch.

tests/test_llm_faq.py compares with a live sentence-transformers when one is importable; the project's venv
has none (see tests/test_install.py), so this test uses vectors it wrote once (tests/data/make_minilm_reference.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarchat.llm.faq import MiniLMEmbedder
from tests.data.make_minilm_reference import TEXTS

REFERENCE = Path(__file__).resolve().parent / "data" / "minilm_reference.npy"


def test_numpy_forward_pass_matches_stored_sentence_transformers_vectors() -> None:
    theirs = np.load(REFERENCE)
    ours = MiniLMEmbedder().encode(TEXTS)
    assert ours.shape == theirs.shape == (4, 384)
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() > 0.999, cosines
