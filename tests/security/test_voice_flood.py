"""Voice-input flooding (issue 17, High 3): sockets that alternate 300 ms of speech with 100 ms of silence make
the VAD report a pause every 0.4 s. Each pause used to start a speculative Whisper run over the whole turn so far,
never cancelled, in one FIFO queue shared by every user: another user's transcript waited behind all of them and
the queued audio grew without bound. Now each socket has at most one transcription running and one waiting (a
newer one replaces the waiting one), and sockets take turns at the shared ASR threads, finals first.

Loopback only, real server, real Piper speech through the real VAD and Whisper, bounded in time."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from avatarchat.server import create_app
from tests.helpers import running
from tests.test_voice_ws import FRAME, SENTENCE, stream, words
from tests.test_ws import open_ws, ws_url
from tests.voice_audio import silence, speak

ATTACKERS = 4
ATTACK_S = 40.0  # an upper bound: the attack stops as soon as the victim has its transcript
HEAD_START_S = 5.0  # the attack runs this long before the victim speaks: the backlog (if any) has built up
NORMAL_S = 6.0  # far beyond a normal final (about 1 s here; under heavy load, 4 x the one measured unflooded)


def chopped(speech: np.ndarray, seconds: float) -> np.ndarray:
    """``speech`` cut into 300 ms pieces with 100 ms of silence after each, repeated to last ``seconds``."""
    on, off = int(0.3 * 16000), silence(0.1)
    pieces = [np.concatenate([speech[i: i + on], off]) for i in range(0, len(speech) - on + 1, on)]
    out = np.concatenate(pieces)
    return np.tile(out, int(np.ceil(seconds * 16000 / len(out))))[: int(seconds * 16000)]


def _final_after(ws, utterance: np.ndarray, timeout_s: float = 30.0) -> tuple[dict | None, float]:
    """Stream ``utterance`` in real time; its final transcript and how long after the end of speech it came."""
    stream(ws, utterance)
    spoken_at = time.perf_counter() - 0.8  # the end of the speech (0.8 s of silence follow it)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ev = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        if ev["type"] == "transcript" and ev["final"]:
            return ev, time.perf_counter() - spoken_at
    return None, time.perf_counter() - spoken_at


def _attack(base: str, name: str, audio: np.ndarray, stop: threading.Event) -> None:
    with connect(ws_url(base, name)) as ws:
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(audio) - FRAME + 1, FRAME)):
            if stop.is_set():
                return
            ws.send(audio[i: i + FRAME].astype("<i2").tobytes())
            delay = t0 + (k + 1) * FRAME / 16000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


@pytest.mark.slow
def test_flooding_voice_sockets_do_not_stall_another_users_transcript(settings, voices, renderer, tts,
                                                                       tmp_path) -> None:
    speech = speak(tts, "Tell me everything about the weather, the mountains and the sea, all of it, slowly.")
    attack = chopped(speech, ATTACK_S)
    utterance = np.concatenate([silence(0.3), speak(tts, SENTENCE), silence(0.8)])
    app = create_app(settings.model_copy(update={"data_dir": tmp_path}), tts=voices, renderer=renderer)
    stop = threading.Event()
    with running(app) as base:
        with open_ws(base, "warm") as ws:  # the model loaded, and a normal final timed on this machine now
            assert _final_after(ws, utterance, timeout_s=60)[0] is not None
            normal_s = _final_after(ws, utterance)[1]
        threads = [threading.Thread(target=_attack, args=(base, f"flood-{k}", attack, stop), daemon=True)
                   for k in range(ATTACKERS)]
        for t in threads:
            t.start()
        try:
            time.sleep(HEAD_START_S)
            with open_ws(base, "victim") as ws:
                final, waited = _final_after(ws, utterance)
            metrics = httpx.get(base + "/metrics", timeout=10).text
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    assert final is not None, "the victim got no transcript within 30 s of the end of its speech"
    assert words(final["text"]) == words(SENTENCE), final
    assert waited < max(NORMAL_S, 4 * normal_s), \
        f"the victim's transcript came {waited:.1f} s after its speech ended ({normal_s:.1f} s unflooded)"
    pending = [line for line in metrics.splitlines() if line.startswith("avatarchat_asr_pending ")]
    assert pending and float(pending[0].split()[1]) <= 2 * (ATTACKERS + 1), pending  # one waiting per socket
    cpu = [line for line in metrics.splitlines() if line.startswith("avatarchat_voice_cpu_seconds_total")]
    assert any('stage="asr"' in line and float(line.split()[-1]) > 0 for line in cpu), cpu
