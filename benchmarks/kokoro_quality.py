"""Does the faster Kokoro sound the same? The shipped int8 graph against the one the server runs (convolutions as
int8 matrix products, pads' silence capped: ``tts/kokoro_graph.py``), on the held-out sentences of
``benchmarks/voices.py``: Distill-MOS (mean, worst) and Whisper base's WER/CER, per voice.

Needs the benchmark environment (``scripts/bench-env.sh``):

    .venv-bench/bin/python benchmarks/kokoro_quality.py
    .venv-bench/bin/python benchmarks/kokoro_quality.py --voices jf_gongitsune jf_nezumi+ko --sentences 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avatarchat.settings import Settings  # noqa: E402
from avatarchat.tts import kokoro_model  # noqa: E402
from avatarchat.tts.kokoro import KokoroTTS  # noqa: E402
from benchmarks.voices import SENTENCES, Judges  # noqa: E402
from tests.voice_audio import RATE, to_16k, trim  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", nargs="+", default=["jf_gongitsune", "jf_nezumi+ko"])
    ap.add_argument("--sentences", type=int, default=10)
    ap.add_argument("--graphs", nargs="+", default=["shipped int8", "rewritten"], choices=["shipped int8", "rewritten"],
                    help="the shipped graph's scores are deterministic: the table in BENCHMARKS.md has them")
    args = ap.parse_args()
    cache = Settings(_env_file=None).model_cache_dir
    judges = Judges(cache)
    graphs = {"shipped int8": kokoro_model.model_file(cache), "rewritten": kokoro_model.fast_model_file(cache)}
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    print("| voice | graph | Distill-MOS mean | worst | WER/CER |\n|---|---|---|---|---|")
    for voice in args.voices:
        for name, path in graphs.items():
            if name not in args.graphs:
                continue
            tts = KokoroTTS(default_voice=voice, cache_dir=cache)
            tts._model = (kokoro_model.load_session(path, 1), kokoro_model.vocabulary(),
                          kokoro_model.style_vectors())
            language = tts.speaker(voice)[1]
            mos, errors = [], []
            for text in SENTENCES[language][:args.sentences]:
                speech = asyncio.run(tts.synthesize(text))
                pcm = trim(to_16k(speech.pcm, speech.sample_rate))
                padded = np.concatenate([np.zeros(RATE // 5, np.int16), pcm, np.zeros(RATE // 5, np.int16)])
                mos.append(judges.mos(padded))
                errors.append(judges.error(padded, text, language))
            print(f"| kokoro:{voice} | {name} | {statistics.mean(mos):.2f} | {min(mos):.2f} "
                  f"| {statistics.mean(errors):.3f} |", flush=True)
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
