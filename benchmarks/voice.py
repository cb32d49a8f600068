"""Voice input: recognition accuracy and speed, VAD timing, and spoken-turn latency through the real server.

Speech is made by the offline voices (Piper ``en_US-joe-medium`` as recorded and reshaped to the default
``+female`` register, and espeak-ng ``en-us``), trimmed to where it
is really loud, so the true start and end of each sentence are known. Reports:
  word error rate per language and voice (Whisper tiny.en, int8, one CPU thread) and its real-time factor;
  VAD onset and offset error against the true edges (after silence and after room noise);
  through ``avatarchat serve`` (echo LLM) and its WebSocket, audio streamed in real time in 60 ms frames as the
  page sends them: end of speech -> final transcript, -> reply_text, -> first clip_ready; speech onset ->
  speech_cancelled while the avatar speaks (voice barge-in); false barge-ins while a clip plays, from room
  noise (what a microphone with echo cancellation hears) and from the clip's own audio fed back raw; and false
  early ends (a turn ended by the short hangover of a finished sentence, after which the person went on: the
  server's ``avatarchat_voice_false_early_ends_total``), with a turn that pauses 0.3 s after a full stop;
  listening (issue 20): the listening loop's head rotation and the page's nod timing (benchmarks/listening.py).
  turn-taking (issue 20): backchannels and noises said while the avatar speaks (several voices, English and
  Korean, hums; how many cancelled its reply or got an answer) and real questions over it (speech onset -> the
  avatar yields, -> its reply is cancelled); Korean spoken turns (issue 20): the held-out Korean sentences of
  benchmarks/voices.py said by the Korean default voice over a socket that chose it: end of speech -> final
  transcript, -> reply_text, and the transcript's character error rate.

    .venv/bin/python benchmarks/voice.py [--runs 4] [--latency-only] [--turns-only [--clips N]] [--korean-only]
    (--latency-only / --turns-only / --korean-only: that server part only, printed with the machine's load,
    BENCHMARKS.md left alone: for short runs on a shared machine; --clips: at most N backchannel clips, for a
    quick check)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import httpx
import numpy as np
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.errors import cer, edit_distance, words  # noqa: E402
from benchmarks.latency import new_session, start_server  # noqa: E402
from benchmarks.listening import listening_rows  # noqa: E402
from benchmarks.report import table, write_section  # noqa: E402
from tests.voice_audio import RATE, hum, noise, silence, speak, to_16k  # noqa: E402

SENTENCES = [
    "Hello avatar, what can you tell me about the weather today?",
    "Please tell me a short story about a brave little robot.",
    "How does the lip sync renderer work on a small computer?",
    "I would like to know which voices you can speak with.",
    "Thank you very much, that was really helpful.",
    "Can you explain how to set up the server on my laptop?",
]
FRAME = 960


def asr_quality(clips: dict[str, list[np.ndarray]]) -> tuple[list[list[object]], float]:
    from avatarchat.asr.whisper import WhisperASR

    asr = WhisperASR("tiny.en", threads=1)
    asr.warm_up()
    rows, audio_s, compute_s = [], 0.0, 0.0
    for voice, pcms in clips.items():
        errors = total = 0
        for text, pcm in zip(SENTENCES, pcms, strict=True):
            result = asr.transcribe(np.concatenate([silence(0.2), pcm, silence(0.2)]), "en")
            errors += edit_distance(words(text), words(result.text))
            total += len(words(text))
            audio_s += result.audio_s
            compute_s += result.compute_s
        rows.append(["en", voice, len(pcms), f"{100 * errors / total:.1f} %"])
    rows.append(["ko", "espeak:ko", "-", "not recognised (no Korean model fit to ship; see docs/architecture.md)"])
    return rows, compute_s / audio_s


def reshape_cost(piper) -> float:
    """CPU seconds per second of speech that moving Joe's voice to the default register costs (median of runs)."""
    from avatarchat.tts.shape import FEMALE, reshape

    speeches = [piper.synthesize_sync(s, "en_US-joe-medium") for s in SENTENCES]
    costs = []
    for speech in speeches * 3:
        t0 = time.thread_time()
        reshape(speech, FEMALE)
        costs.append((time.thread_time() - t0) / speech.duration_s)
    return statistics.median(costs)


def vad_timing(pcms: list[np.ndarray]) -> list[list[object]]:
    from avatarchat.asr.vad import SileroModel, speech_segments

    model, rows = SileroModel(), []
    for name, pad in (("silence", silence), ("room noise", lambda s: noise(s, rms=150))):
        onsets, offsets, missed = [], [], 0
        for pcm in pcms:
            audio = np.concatenate([pad(1.0), pcm, pad(1.5)])
            segments = speech_segments(model, audio)
            if len(segments) != 1:
                missed += 1
                continue
            onsets.append((segments[0][0] - RATE) / RATE * 1000)
            offsets.append((segments[0][1] - RATE - len(pcm)) / RATE * 1000)
        rows.append([name, len(pcms), missed, f"{statistics.mean(onsets):+.0f}", f"{max(map(abs, onsets)):.0f}",
                     f"{statistics.mean(offsets):+.0f}", f"{max(map(abs, offsets)):.0f}"])
    return rows


class Sent:
    """When each frame of a stream left: ``at(sample)`` is when the server could first have that sample."""

    def __init__(self, t0: float, times: list[float]) -> None:
        self.t0, self.times = t0, times

    def at(self, sample: int) -> float:
        return self.times[min(len(self.times) - 1, sample // FRAME)]


class Socket:
    """A session's socket, read in the gaps between sent frames (one thread, so every event is stamped when it
    arrives, within a few ms)."""

    def __init__(self, base: str) -> None:
        self.session = new_session(base)
        self.ws = connect(base.replace("http://", "ws://") + f"/ws?session_id={self.session}")
        self.events: list[tuple[float, dict]] = []

    def pump(self, until: float) -> None:
        """Read events until ``until`` (perf_counter)."""
        while (left := until - time.perf_counter()) > 0:
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                return
            self.events.append((time.perf_counter(), json.loads(raw)))

    def stream(self, audio: np.ndarray) -> Sent:
        """Send as a microphone would: each 60 ms frame once it has been 'captured'."""
        t0, sent = time.perf_counter(), []
        for k in range(len(audio) // FRAME):
            self.pump(t0 + (k + 1) * FRAME / RATE)
            self.ws.send(audio[k * FRAME: (k + 1) * FRAME].astype("<i2").tobytes())
            sent.append(time.perf_counter())
        return Sent(t0, sent)

    def first(self, kind: str, after: float, timeout: float = 30.0, **match) -> tuple[float, dict] | None:
        deadline = time.perf_counter() + timeout
        while True:
            for t, ev in self.events:
                if t >= after and ev["type"] == kind and all(ev.get(k) == v for k, v in match.items()):
                    return t, ev
            if time.perf_counter() >= deadline:
                return None
            self.pump(min(deadline, time.perf_counter() + 0.05))


def clip_audio(base: str, url: str) -> np.ndarray:
    with av.open(io.BytesIO(httpx.get(base + url, timeout=30).content)) as c:
        rate = c.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    return to_16k((samples * 32767).astype(np.int16), rate)


def conversation(base: str, first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """One session: a spoken turn answered, room noise and then the clip's own audio while the avatar speaks,
    and a second spoken turn over the avatar."""
    sock = Socket(base)
    time.sleep(0.3)
    lead = silence(0.5)
    sent = sock.stream(np.concatenate([lead, first, silence(1.0)]))
    t0, t_end = sent.t0, sent.at(len(lead) + len(first) - 1)
    final, reply, clip = (sock.first(k, t0, **m) for k, m in
                          (("transcript", {"final": True}), ("reply_text", {}), ("clip_ready", {})))
    out = {"final": (final[0] - t_end) * 1000, "reply_text": (reply[0] - t_end) * 1000,
           "clip_ready": (clip[0] - t_end) * 1000}
    t_noise = sock.stream(noise(1.5, rms=150)).t0  # the room while the avatar talks, after echo cancellation
    out["false_noise"] = float(sock.first("speech_cancelled", t_noise, timeout=0.5) is not None)
    lead2 = silence(0.3)
    sent = sock.stream(np.concatenate([lead2, second, silence(1.0)]))
    cancelled = sock.first("speech_cancelled", sent.t0, reply=clip[1]["reply"])
    out["barge_in"] = (cancelled[0] - sent.at(len(lead2))) * 1000 if cancelled else float("nan")
    clip2 = sock.first("clip_ready", cancelled[0] if cancelled else sent.t0, timeout=60)
    if clip2 is not None:  # the avatar's own voice fed straight back, as a microphone without echo cancellation
        t2 = sock.stream(clip_audio(base, clip[1]["url"])).t0
        out["false_raw_echo"] = float(sock.first("speech_cancelled", t2, timeout=0.5,
                                                 reply=clip2[1]["reply"]) is not None)
    sock.ws.close()
    return out


def false_early_ends(base: str) -> float:
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("avatarchat_voice_false_early_ends_total "):
            return float(line.split()[1])
    return float("nan")


def paused_turn(base: str, piper) -> dict[str, float]:
    """A finished sentence, 0.3 s of silence (longer than the short hangover, shorter than the normal one),
    then more: the server ends the turn early and then hears the person go on."""
    sock = Socket(base)
    time.sleep(0.3)
    audio = np.concatenate([silence(0.5), speak(piper, "What time is it?"), silence(0.3),
                            speak(piper, "And what is the weather like tomorrow?"), silence(1.5)])
    sent = sock.stream(audio)
    sock.first("clip_ready", time.perf_counter(), timeout=5)  # the answer to the rest, if any
    finals = [ev for t, ev in sock.events if t >= sent.t0 and ev["type"] == "transcript" and ev["final"]]
    sock.ws.close()
    return {"turns": float(len(finals))}


BACKCHANNELS = ["Uh huh.", "Mm hmm.", "Yeah.", "Okay.", "Right.", "Yes.", "Ha ha ha.", "I see."]
KOREAN_BACKCHANNELS = ["네.", "응.", "그래."]
QUESTIONS = ["Tell me more about the weather in the mountains, please.", "Wait, what did you say about robots?",
             "Can you explain how the renderer works?"]
LONG_ANSWER = ("Here is a long answer that keeps the avatar talking for a while. It has several sentences, each of "
               "them said in turn. The person may say something while it speaks. Then we see what the avatar does.")


def turn_clips(piper, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Backchannels in three English voices, Korean ones in espeak's Korean voice, and two hums (no words)."""
    from avatarchat.tts.espeak import EspeakTTS

    espeak = EspeakTTS()
    clips = [(f"{voice}: {text}", speak(tts, text, voice)) for tts, voice in (
        (piper, "en_US-joe-medium"), (piper, "en_US-joe-medium+female"), (espeak, "en-us")) for text in BACKCHANNELS]
    clips += [(f"ko: {text}", speak(espeak, text, "ko")) for text in KOREAN_BACKCHANNELS]
    clips += [("hum 0.6 s", hum(0.6)), ("hum 0.9 s, 220 Hz", hum(0.9, f0=220.0))]
    return clips[:limit] if limit else clips


def over_the_avatar(base: str, audio: np.ndarray) -> dict[str, float]:
    """One session: a long typed reply whose first clip the page reports playing, then ``audio`` (after 0.3 s
    of silence) streamed in real time. Whether the reply was cancelled, whether the turn got an answer (a new
    reply or the not-heard cue), and ms from the speech onset to ``yield`` and to ``speech_cancelled``."""
    sock = Socket(base)
    time.sleep(0.2)
    httpx.post(base + "/chat", json={"session_id": sock.session, "message": LONG_ANSWER}, timeout=60)
    clip = sock.first("clip_ready", 0.0, timeout=60)
    sock.ws.send(json.dumps({"type": "clip_started", "reply": clip[1]["reply"], "seq": clip[1]["seq"]}))
    lead = silence(0.3)
    sent = sock.stream(np.concatenate([lead, audio, silence(1.2)]))
    onset = sent.at(len(lead))
    verdict = None
    deadline = time.perf_counter() + 15
    while verdict is None and time.perf_counter() < deadline:
        sock.pump(time.perf_counter() + 0.1)
        for _, ev in sock.events:
            if ev["type"] in ("resume", "reply_text", "not_heard") and ev.get("reply") != clip[1]["reply"]:
                verdict = ev
    sock.pump(time.perf_counter() + 1.0)
    yielded = sock.first("yield", sent.t0, timeout=0)
    cancelled = sock.first("speech_cancelled", sent.t0, timeout=0, reply=clip[1]["reply"])
    answered = any(ev["type"] in ("reply_text", "not_heard") and ev.get("reply") != clip[1]["reply"]
                   for t, ev in sock.events if t >= sent.t0)
    sock.ws.close()
    return {"cancelled": float(cancelled is not None), "answered": float(answered),
            "yield_ms": (yielded[0] - onset) * 1000 if yielded else float("nan"),
            "cancel_ms": (cancelled[0] - onset) * 1000 if cancelled else float("nan")}


def turn_taking(piper, limit: int | None = None) -> tuple[list[list[object]], list[list[object]]]:
    clips = turn_clips(piper, limit)
    questions = [speak(piper, q) for q in QUESTIONS[: 1 if limit else None]]
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp))
        try:
            time.sleep(3)  # the ASR model loads in the background after start-up
            heard = [(name, over_the_avatar(base, pcm)) for name, pcm in clips]
            asked = [over_the_avatar(base, pcm) for pcm in questions]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    bad = [name for name, r in heard if r["cancelled"] or r["answered"]]

    def median(values: list[float]) -> str:  # nan: no yield (the VAD heard no speech in it) or no cancel
        kept = [v for v in values if v == v]
        return f"{statistics.median(kept):.0f}" if kept else "-"

    rows = [[f"{len(heard)} backchannels and noises ({len(BACKCHANNELS)} English in 3 voices, Korean, hums)",
             f"{sum(r['cancelled'] for _, r in heard):.0f}", f"{sum(r['answered'] for _, r in heard):.0f}",
             median([r["yield_ms"] for _, r in heard]), "-",
             ", ".join(bad) or "none"],
            [f"{len(asked)} real questions", f"{sum(r['cancelled'] for r in asked):.0f}",
             f"{sum(r['answered'] for r in asked):.0f}", median([r["yield_ms"] for r in asked]),
             f"{median([r['cancel_ms'] for r in asked])} (worst {max(r['cancel_ms'] for r in asked):.0f})",
             ""]]
    def ms(value: float) -> str:
        return f"{value:.0f}" if value == value else "-"

    said = [*heard, *((f"question: {q}", r) for q, r in zip(QUESTIONS, asked, strict=False))]
    return rows, [[name, ms(r["yield_ms"]), int(r["cancelled"]), int(r["answered"]), ms(r["cancel_ms"])]
                  for name, r in said]


PER_CLIP_HEAD = ["clip", "yield ms", "cancelled", "answered", "cancel ms"]
TURN_HEAD = ["said over the avatar", "cancelled", "answered", "onset -> yield ms (median)",
             "onset -> cancel ms (median)", "cancelled or answered"]


def latency_rows(runs: list[dict[str, float]]) -> list[list[object]]:
    med = {k: statistics.median([r[k] for r in runs if k in r]) for k in runs[0]}
    worst = {k: max(r[k] for r in runs if k in r) for k in runs[0]}
    return [[name, f"{med[k]:.0f}", f"{worst[k]:.0f}", target] for name, k, target in (
        ("end of speech -> final transcript", "final", ""),
        ("end of speech -> reply_text", "reply_text", "< 600"),
        ("end of speech -> first clip_ready", "clip_ready", "< 1100"),
        ("speech onset -> speech_cancelled (voice barge-in)", "barge_in", "< 200"))]


def server_runs(n: int, clips: list[np.ndarray], piper) -> tuple[list[dict[str, float]], dict[str, float]]:
    """``n`` conversations and, after them, the false early ends they caused; then one paused turn."""
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp))
        try:
            time.sleep(3)  # the ASR model loads in the background after start-up
            for i in range(n):
                runs.append(conversation(base, clips[i % len(clips)], clips[(i + 1) % len(clips)]))
            early = {"conversations": false_early_ends(base)}
            paused = paused_turn(base, piper)
            early["paused"] = false_early_ends(base) - early["conversations"]
            early["paused_turns"] = paused["turns"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return runs, early


KOREAN_VOICE = "kokoro:jf_nezumi+ko"  # the Korean default voice, choosing it makes turns heard in Korean


def korean_turns() -> list[dict[str, float]]:
    """Each held-out Korean sentence of benchmarks/voices.py, said by the Korean default voice, streamed in real
    time over a socket whose session chose that voice (so the multilingual Whisper hears it, language forced):
    end of speech -> the final transcript that follows it and -> that turn's reply_text, the CER of all the
    finals of the sentence (a sentence heard as two turns is counted)."""
    from avatarchat.tts.kokoro import KokoroTTS
    from benchmarks.voices import KOREAN

    kokoro = KokoroTTS()
    said = [speak(kokoro, text, KOREAN_VOICE.split(":", 1)[1]) for text in KOREAN]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp))
        try:
            time.sleep(3)
            for k, (text, pcm) in enumerate(zip(KOREAN, said, strict=True)):
                sock = Socket(base)
                sock.ws.send(json.dumps({"type": "voice", "voice": KOREAN_VOICE}))
                time.sleep(0.3)
                lead = silence(0.5)
                sent = sock.stream(np.concatenate([lead, pcm, silence(1.2)]))
                t_end = sent.at(len(lead) + len(pcm) - 1)
                sock.first("reply_text", t_end, timeout=30)  # the answer to the turn that ends with the speech
                sock.pump(time.perf_counter() + 0.5)
                sock.ws.close()
                finals = [(t, ev) for t, ev in sock.events if t >= sent.t0 and ev["type"] == "transcript"
                          and ev["final"]]
                last = [t for t, ev in finals if t >= t_end]
                reply = [t for t, ev in sock.events if ev["type"] == "reply_text" and last and t >= last[0]]
                if k == 0:
                    continue  # the multilingual model loads on the first Korean turn: not what is measured
                out.append({"final": (last[0] - t_end) * 1000 if last else float("nan"),
                            "reply_text": (reply[0] - t_end) * 1000 if reply else float("nan"),
                            "turns": float(len(finals)),
                            "cer": cer(text, " ".join(ev["text"] for _, ev in finals))})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def korean_rows(runs: list[dict[str, float]]) -> list[list[object]]:
    def stat(key: str) -> list[str]:
        kept = [r[key] for r in runs if r[key] == r[key]]
        return [f"{statistics.median(kept):.0f}", f"{max(kept):.0f}"] if kept else ["-", "-"]

    split = sum(r["turns"] > 1 for r in runs)
    return [["end of speech -> final transcript (ms)", *stat("final"), ""],
            ["end of speech -> reply_text (ms)", *stat("reply_text"), "<= 1000"],
            ["CER of the final transcript", f"{statistics.median(r['cer'] for r in runs):.2f}",
             f"{max(r['cer'] for r in runs):.2f}", "<= 0.25"],
            ["sentences heard as more than one turn", f"{split} of {len(runs)}", "", "0"]]


def early_rows(runs: list[dict[str, float]], early: dict[str, float]) -> list[list[object]]:
    return [[f"{len(runs)} conversations (2 spoken turns each, full sentences)", f"{early['conversations']:.0f}"],
            ["a full stop, 0.3 s of silence, then more (one turn)",
             f"{early['paused']:.0f} ({early['paused_turns']:.0f} finals sent)"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--turns-only", action="store_true")
    parser.add_argument("--korean-only", action="store_true")
    parser.add_argument("--clips", type=int, default=None)
    args = parser.parse_args()
    from avatarchat.tts.espeak import EspeakTTS
    from avatarchat.tts.piper import PiperTTS

    piper = PiperTTS()
    piper.warm_up()
    if args.korean_only:
        load = os.getloadavg()
        runs = korean_turns()
        print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}; {len(runs)} Korean turns")
        print(table(["", "median", "worst", "target"], korean_rows(runs)))
        return
    if args.turns_only:
        load = os.getloadavg()
        rows, per_clip = turn_taking(piper, args.clips)
        print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
        print(table(TURN_HEAD, rows))
        print(table(PER_CLIP_HEAD, per_clip))
        return
    if args.latency_only:
        load = os.getloadavg()
        runs, early = server_runs(args.runs, [speak(piper, s) for s in SENTENCES], piper)
        print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}; {args.runs} conversations, ms")
        print(table(["", "median", "worst", "target"], latency_rows(runs)))
        print(table(["false early ends", "count"], early_rows(runs, early)))
        return
    clips = {"piper:en_US-joe-medium": [speak(piper, s) for s in SENTENCES],
             "piper:en_US-joe-medium+female": [speak(piper, s, "en_US-joe-medium+female") for s in SENTENCES],
             "espeak:en-us": [speak(EspeakTTS(), s, "en-us") for s in SENTENCES]}
    wer_rows, rtf = asr_quality(clips)
    shape_rtf = reshape_cost(piper)
    vad_rows = vad_timing(clips["piper:en_US-joe-medium"] + clips["espeak:en-us"])
    runs, early = server_runs(args.runs, clips["piper:en_US-joe-medium"], piper)
    turn_rows, _ = turn_taking(piper)
    korean = korean_turns()
    false_rows = [["room noise (rms 150, ~-47 dBFS) while a clip plays",
                   f"{sum(r['false_noise'] for r in runs):.0f} / {len(runs)}"],
                  ["the clip's own audio fed back raw (no echo cancellation)",
                   f"{sum(r.get('false_raw_echo', 0) for r in runs):.0f} / {sum('false_raw_echo' in r for r in runs)}"]]
    body = ("Word error rate (Whisper `tiny.en`, int8, greedy, one CPU thread; "
            f"{len(SENTENCES)} sentences per voice):\n\n"
            + table(["language", "voice", "sentences", "WER"], wer_rows)
            + f"\n\nASR real-time factor on one thread: **{rtf:.3f}** (compute seconds per second of audio). "
            "`+female` is the default voice: Joe's speech moved to a woman's register by resampling and "
            "pitch-synchronous overlap-add (`tts/shape.py`), which costs "
            f"**{shape_rtf:.3f}** s per second of speech on one thread.\n\n"
            "VAD (Silero v6, threshold 0.5, hangover 350 ms: the one for turns whose words do not tell) against "
            "the true edges of each sentence, ms "
            "(positive: late):\n\n"
            + table(["padding", "sentences", "missed", "onset mean", "onset max abs", "offset mean",
                     "offset max abs"], vad_rows)
            + f"\n\nThrough `avatarchat serve` (echo LLM) and its WebSocket, audio streamed in real time in 60 ms "
            f"frames, {args.runs} conversations, ms:\n\n"
            + table(["", "median", "worst", "target"], latency_rows(runs))
            + "\n\nFalse early ends (a turn ended after the short hangover of a finished sentence, then the person "
            "went on within the normal one; `avatarchat_voice_false_early_ends_total`):\n\n"
            + table(["turns", "false early ends"], early_rows(runs, early))
            + "\n\nFalse barge-ins (a `speech_cancelled` while the avatar speaks and nobody does):\n\n"
            + table(["microphone hears", "false barge-ins"], false_rows)
            + "\n\nThe page relies on the browser's echo cancellation (`getUserMedia` with `echoCancellation`); "
            "without it the avatar's own voice would interrupt it, as the last row shows."
            + "\n\nListening while the person speaks (issue 20; `benchmarks/listening.py`, whose section has the "
            "details: the loop measured from its frames by a face-mesh pass, the page's rules fed Piper phrases "
            "with known pauses):\n\n"
            + table(["", "measured", "target", "met"], listening_rows(piper))
            + "\n\nTurn-taking (a long typed reply playing, its first clip reported started; then the clip streamed "
            "in real time; target: none cancelled or answered, a real question yields within 150 ms of its onset "
            "and cancels within 700 ms):\n\n"
            + table(TURN_HEAD, turn_rows)
            + "\n\nKorean spoken turns (the held-out Korean sentences of `benchmarks/voices.py` said by the Korean "
            f"default voice `{KOREAN_VOICE}` over a socket that chose it; {len(korean)} sentences after the first, "
            "which loads the multilingual model; CER over all the finals of a sentence):\n\n"
            + table(["", "median", "worst", "target"], korean_rows(korean)))
    write_section("voice", "Voice input", body, "python benchmarks/voice.py")


if __name__ == "__main__":
    main()
