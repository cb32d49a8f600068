"""Voices: naturalness, intelligibility and speed of every voice a user can pick as the English or Korean default.

For each voice, held-out sentences (in no test, calibration or FAQ text) are spoken by the backend itself:
  Distill-MOS (Microsoft's naturalness predictor; about 1 = bad, 5 = excellent), mean and worst sentence;
  WER (English) or CER (Korean) of the speech read back by Whisper base (multilingual, int8, language forced);
  real-time factor (synthesis seconds per second of speech) with the engine on one and on two threads;
  first-chunk latency: seconds to synthesize a short first sentence of about one second of speech.
Needs the benchmark environment (PyTorch for Distill-MOS, Whisper base): ``scripts/bench-env.sh`` makes it.

    .venv-bench/bin/python benchmarks/voices.py            # all voices, all sentences, writes BENCHMARKS.md
    .venv-bench/bin/python benchmarks/voices.py --sample   # two voices a language, three sentences: a check only
    .venv-bench/bin/python benchmarks/voices.py --sentences 2   # every voice, two sentences: printed only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avatarchat.settings import Settings  # noqa: E402
from avatarchat.tts import create_tts  # noqa: E402
from avatarchat.tts.kokoro import SPEAKERS  # noqa: E402
from benchmarks.errors import cer, edit_distance, words  # noqa: E402
from benchmarks.report import table, write_section  # noqa: E402
from tests.voice_audio import RATE, to_16k, trim  # noqa: E402

# No numbers in them: Whisper writes "nine" as 9, which would count as an error of every voice alike.
ENGLISH = [
    "The library opens early in the morning and closes before dinner.",
    "My sister bought a green bicycle with a basket on the front.",
    "Could you remind me to call the dentist tomorrow afternoon?",
    "Rain is expected over the hills later this evening.",
    "We planted tomatoes, beans and a row of sunflowers in the garden.",
    "The train to the airport leaves from the second platform.",
    "She laughed when the puppy tried to catch its own tail.",
    "Please turn off the lights before you leave the office.",
    "A warm cup of tea is the best way to start a cold day.",
    "The museum has a new exhibition about ancient ships.",
]
KOREAN = [
    "도서관은 아침 일찍 문을 열고 저녁에 닫습니다.",
    "제 동생은 앞에 바구니가 달린 초록색 자전거를 샀어요.",
    "내일 오후에 치과에 전화하라고 알려 주실 수 있나요?",
    "오늘 저녁 늦게 언덕 위로 비가 올 것으로 예상됩니다.",
    "우리는 정원에 토마토와 콩과 해바라기를 심었어요.",
    "공항으로 가는 기차는 저쪽 승강장에서 출발합니다.",
    "강아지가 자기 꼬리를 잡으려고 해서 그녀가 웃었어요.",
    "사무실을 나가기 전에 불을 꺼 주세요.",
    "따뜻한 차 한 잔은 추운 날을 시작하는 가장 좋은 방법이에요.",
    "박물관에 오래된 배에 관한 새로운 전시가 열렸습니다.",
]
FIRST_CHUNK = {"en": "Hello there, nice to meet you.", "ko": "안녕하세요, 반가워요."}
SENTENCES = {"en": ENGLISH, "ko": KOREAN}


def candidates(language: str) -> list[str]:
    """The voice ids a user could choose as this language's default."""
    if language == "en":
        return ["piper:en_US-joe-medium", "piper:en_US-joe-medium+female", *(f"kokoro:{s}" for s in SPEAKERS),
                "espeak:en-us"]
    return [*(f"kokoro:{s}+ko" for s in SPEAKERS), "espeak:ko"]


@dataclass
class Row:
    voice: str
    language: str
    mos: list[float]
    errors: list[float]
    rtf1: float
    rtf2: float
    first_chunk_s: float
    first_chunk_audio_s: float


class Judges:
    """Distill-MOS and Whisper base, loaded once (both need the benchmark environment)."""

    def __init__(self, cache: Path) -> None:
        import distillmos
        import torch

        torch.set_num_threads(1)
        self._torch = torch
        self._mos = distillmos.ConvTransformerSQAModel()
        self._mos.eval()
        from avatarchat.asr.whisper import WhisperASR

        self._asr = WhisperASR(str(whisper_base(cache)), threads=1)

    def mos(self, pcm16k: np.ndarray) -> float:
        x = self._torch.from_numpy(pcm16k.astype(np.float32) / 32768.0)[None]
        with self._torch.no_grad():
            return float(self._mos(x).item())

    def error(self, pcm16k: np.ndarray, text: str, language: str) -> float:
        """WER for English, CER (spaces and punctuation ignored) for Korean, of Whisper's reading of the speech."""
        heard = self._asr.transcribe(pcm16k, language).text
        if language == "en":
            return edit_distance(words(text), words(heard)) / max(len(words(text)), 1)
        return cer(text, heard)


def whisper_base(cache: Path) -> Path:
    """Whisper base (multilingual), joined from its packages as the server joins it (asr/bundled.py)."""
    from avatarchat.asr.bundled import SplitModel, find_model

    found = find_model("base", cache)
    return found.assemble() if isinstance(found, SplitModel) else found


def routers(cache: Path):
    """The server's voices as configured, with the neural engines on one thread and on two."""
    return {threads: create_tts(Settings(_env_file=None, piper_threads=threads, kokoro_threads=threads,
                                         model_cache_dir=cache)) for threads in (1, 2)}


async def speak(router, voice: str, text: str):
    t0 = time.perf_counter()
    speech = await router.synthesize(text, voice, route=False)
    return speech, time.perf_counter() - t0


async def measure(voice: str, language: str, sentences: list[str], tts: dict, judges: Judges) -> Row:
    await speak(tts[1], voice, FIRST_CHUNK[language])  # load the model; its first run is not timed
    await speak(tts[2], voice, FIRST_CHUNK[language])
    first, first_s = await speak(tts[1], voice, FIRST_CHUNK[language])
    mos, errors, spent, spoken, spent2, spoken2 = [], [], 0.0, 0.0, 0.0, 0.0
    for text in sentences:
        speech, seconds = await speak(tts[1], voice, text)
        spent, spoken = spent + seconds, spoken + speech.duration_s
        speech2, seconds2 = await speak(tts[2], voice, text)
        spent2, spoken2 = spent2 + seconds2, spoken2 + speech2.duration_s
        pcm = trim(to_16k(speech.pcm, speech.sample_rate))
        padded = np.concatenate([np.zeros(RATE // 5, np.int16), pcm, np.zeros(RATE // 5, np.int16)])
        mos.append(judges.mos(padded))
        errors.append(judges.error(padded, text, language))
    return Row(voice, language, mos, errors, spent / spoken, spent2 / spoken2, first_s, first.duration_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", action="store_true",
                        help="two voices a language, three sentences: checks the script, writes nothing")
    parser.add_argument("--sentences", type=int, default=10,
                        help="sentences a language (fewer than 10: printed only, BENCHMARKS.md is left alone)")
    args = parser.parse_args()
    args.sample = args.sample or args.sentences < len(ENGLISH)
    cache = Settings(_env_file=None).model_cache_dir
    judges = Judges(cache)
    tts = routers(cache)
    for router in tts.values():
        router.warm_up()
    load_before = os.getloadavg()
    rows: list[Row] = []
    for language in ("en", "ko"):
        voices = candidates(language)
        sentences = SENTENCES[language]
        if args.sentences < len(ENGLISH):
            sentences = sentences[:args.sentences]
        elif args.sample:
            voices, sentences = [voices[1], voices[2]] if language == "en" else [voices[0], voices[-1]], sentences[:3]
        for voice in voices:
            rows.append(asyncio.run(measure(voice, language, sentences, tts, judges)))
            r = rows[-1]
            print(f"{voice}: MOS {statistics.mean(r.mos):.2f} (worst {min(r.mos):.2f}), "
                  f"{'WER' if language == 'en' else 'CER'} {statistics.mean(r.errors):.3f}, RTF {r.rtf1:.2f}/"
                  f"{r.rtf2:.2f}, first chunk {r.first_chunk_s:.2f} s for {r.first_chunk_audio_s:.2f} s", flush=True)
    load_after = os.getloadavg()
    body = "\n".join([
        f"Held-out sentences ({len(sentences)} a language) spoken by each voice; Distill-MOS 1 (bad) to 5; WER "
        "(English) or CER (Korean) of Whisper base (multilingual, int8, language forced, beam 1); real-time "
        "factor with the engine on 1 and 2 threads (espeak-ng is one process either way); first chunk: "
        f"seconds to synthesize \"{FIRST_CHUNK['en']}\" / \"{FIRST_CHUNK['ko']}\" (about 1 s of speech), "
        "1 thread, warm.",
        "",
        table(["voice", "language", "Distill-MOS mean", "worst", "WER/CER", "RTF 1 thread", "RTF 2 threads",
               "first chunk s", "its audio s"],
              [[r.voice, r.language, statistics.mean(r.mos), min(r.mos), statistics.mean(r.errors), r.rtf1, r.rtf2,
                r.first_chunk_s, r.first_chunk_audio_s] for r in rows]),
        "",
        f"Load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores: "
        "other work on the machine inflates the times, not the scores.",
    ])
    if args.sample:
        print(body)
        return 0
    write_section("voices", "Voices: naturalness, intelligibility, speed", body,
                  ".venv-bench/bin/python benchmarks/voices.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
