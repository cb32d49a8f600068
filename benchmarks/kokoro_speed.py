"""Kokoro's speed on this CPU: the shipped int8 graph against the rewritten one (``tts/kokoro_graph.py``), on one
and two threads, beside Piper's default voice, on a ~1 s first chunk and a ~3 s sentence.

The machine is shared, so the variants take turns (round robin, warm) and each time is reported as wall seconds
and as this process's CPU seconds (on one thread, CPU time hardly moves with other work on the machine, wall
time does); the 1-minute load average is printed beside them. Also checks the rewrite keeps the audio: the
correlation of each variant's waveform with the shipped graph's on one thread (same input, deterministic).

    .venv/bin/python benchmarks/kokoro_speed.py            # 5 rounds
    .venv/bin/python benchmarks/kokoro_speed.py --rounds 3 --speaker jf_nezumi --language ko
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avatarchat.settings import Settings  # noqa: E402
from avatarchat.tts import create_tts, kokoro_model  # noqa: E402
from avatarchat.tts.kokoro import KokoroTTS, _trim  # noqa: E402

TEXTS = {
    "en": {"1 s": "Hello there, nice to meet you.",
           "3 s": "The library opens early in the morning and closes before dinner."},
    "ko": {"1 s": "안녕하세요, 반가워요.", "3 s": "도서관은 아침 일찍 문을 열고 저녁에 닫습니다."},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--speaker", default="jf_gongitsune")
    ap.add_argument("--language", default="en", choices=sorted(TEXTS))
    args = ap.parse_args()
    settings = Settings(_env_file=None)
    cache = settings.model_cache_dir
    tts = KokoroTTS(cache_dir=cache)
    vocab, styles = kokoro_model.vocabulary(), kokoro_model.style_vectors()
    texts = TEXTS[args.language]
    ids = {k: tts.chunks(asyncio.run(tts.phonemes(t, args.language)), vocab)[0] for k, t in texts.items()}
    shipped, rewritten = kokoro_model.model_file(cache), kokoro_model.fast_model_file(cache)
    sessions = {f"{name} {n} thread{'s' * (n > 1)}": kokoro_model.load_session(path, n)
                for name, path in (("shipped int8", shipped), ("rewritten", rewritten)) for n in (1, 2)}

    def kokoro(session, ids: list[int]) -> np.ndarray:
        style = styles[args.speaker][len(ids) - 1].reshape(1, 256)
        return session.run(None, {"tokens": np.array([[0, *ids, 0]], np.int64), "style": style,
                                  "speed": np.array([1.0], np.float32)})[0].ravel()

    router = create_tts(settings)
    rates = {"piper": 22050}
    piper_voice = settings.voice_en if args.language == "en" else None

    def piper(text: str) -> np.ndarray:
        speech = asyncio.run(router.synthesize(text, piper_voice, route=False))
        rates["piper"] = speech.sample_rate
        return speech.pcm.astype(np.float32)

    runs = {name: (lambda k, s=s: kokoro(s, ids[k])) for name, s in sessions.items()}
    if piper_voice:
        runs[piper_voice] = lambda k: piper(texts[k])
    for run in runs.values():
        run("1 s")  # warm
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    audio: dict[tuple[str, str], np.ndarray] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for k in texts:
            for name, run in runs.items():
                t, c = time.perf_counter(), time.process_time()
                out = run(k)
                wall.setdefault((name, k), []).append(time.perf_counter() - t)
                cpu.setdefault((name, k), []).append(time.process_time() - c)
                audio.setdefault((name, k), out)
        loads.append(os.getloadavg()[0])
    print(f"{args.speaker} ({args.language}), {args.rounds} rounds; load average (1 min) during: "
          + " ".join(f"{x:.2f}" for x in loads))
    print("| variant | input | audio made s | speech s (trimmed) | wall s (median, min) | CPU s (median) "
          "| CPU s per s of speech | corr. with shipped |")
    print("|---|---|---|---|---|---|---|---|")
    for name in runs:
        for k in texts:
            a = audio[(name, k)]
            rate = kokoro_model.SAMPLE_RATE if name in sessions else rates["piper"]
            speech = _trim(a / 32768.0) if name not in sessions else _trim(a)
            corr = f"{similarity(speech, _trim(audio[('shipped int8 1 thread', k)])):.4f}" if name in sessions else "-"
            c = float(np.median(cpu[(name, k)]))
            print(f"| {name} | {k} | {len(a) / rate:.2f} | {len(speech) / rate:.2f} "
                  f"| {np.median(wall[(name, k)]):.3f}, {min(wall[(name, k)]):.3f} | {c:.3f} "
                  f"| {c / (len(speech) / rate):.3f} | {corr} |")


def similarity(a: np.ndarray, b: np.ndarray, max_lag: int = 1200) -> float:
    """The best correlation of two trimmed waveforms over shifts of up to ``max_lag`` samples (50 ms): trimming
    may start the two a few samples apart."""
    best = -1.0
    for lag in range(-max_lag, max_lag + 1, 4):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n > 1000:
            best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


if __name__ == "__main__":
    main()
