"""Voice input through the real server and socket: spoken turns become chat messages, speech onset interrupts
the avatar, and bad audio frames are refused without harming the socket or other sessions."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from avatarchat.server import create_app
from avatarchat.settings import Settings
from tests.helpers import running, session_for
from tests.test_ws import collect, open_ws, ws_url
from tests.voice_audio import noise, silence, speak

FRAME = 960  # samples: 60 ms, as the page sends them
SENTENCE = "Hello avatar, what can you tell me about the weather today?"


@pytest.fixture(scope="module")
def utterance(tts) -> np.ndarray:
    return np.concatenate([silence(0.3), speak(tts, SENTENCE), silence(0.8)])


def stream(ws, audio: np.ndarray, speed: float = 1.0) -> None:
    """Send ``audio`` as the page does: 60 ms binary frames, paced at ``speed`` x real time."""
    t0 = time.perf_counter()
    for k, i in enumerate(range(0, len(audio) - FRAME + 1, FRAME)):
        ws.send(audio[i: i + FRAME].astype("<i2").tobytes())
        delay = t0 + (k + 1) * FRAME / 16000 / speed - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


def test_a_spoken_turn_is_transcribed_and_answered_with_a_clip(server: str, utterance) -> None:
    with open_ws(server, "voice-1") as ws:
        stream(ws, utterance, speed=1.2)
        events = collect(ws, "clip_ready", timeout_s=60)
    types = [e["type"] for e in events]
    assert types[0] == "vad" and events[0]["state"] == "speech", types
    final = next(e for e in events if e["type"] == "transcript" and e["final"])
    assert words(final["text"]) == words(SENTENCE), final
    assert types.index("transcript") < types.index("reply_text") < types.index("clip_ready")
    reply = next(e for e in events if e["type"] == "reply_text")
    assert words(reply["text"]) == words(SENTENCE)  # the echo LLM says back what it heard


def test_speaking_over_the_avatar_cancels_its_reply(server: str, utterance) -> None:
    with open_ws(server, "voice-2") as ws:
        stream(ws, utterance, speed=1.2)
        first = next(e for e in collect(ws, "clip_ready", timeout_s=60) if e["type"] == "clip_ready")
        stream(ws, noise(0.6, rms=150))  # the room while the avatar talks: no barge-in
        stream(ws, utterance, speed=1.0)  # a real interruption: cancelled once its words are heard
        events = collect(ws, "speech_cancelled", timeout_s=20)
    kinds = [(e["type"], e.get("state")) for e in events]
    assert ("vad", "speech") in kinds
    assert kinds.index(("vad", "speech")) < kinds.index(("speech_cancelled", None))
    assert events[-1]["reply"] == first["reply"]


def test_bad_audio_frames_get_clear_errors_and_harm_nothing(server: str) -> None:
    with open_ws(server, "voice-3") as ws, open_ws(server, "voice-4") as other:
        for frame in (b"\x01\x02\x03", b"\x00" * 1000, b""):
            ws.send(frame)
            ev = json.loads(ws.recv(timeout=10))
            assert ev["type"] == "error" and ev["code"] == "bad_audio", ev
            assert "30 ms" in ev["message"]
        ws.send(b"\x00" * 70000)
        ev = json.loads(ws.recv(timeout=10))
        assert ev["code"] == "frame_too_large", ev
        ws.send(silence(0.06).tobytes())  # a good frame is still taken
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
        other.send(json.dumps({"type": "ping"}))
        assert json.loads(other.recv(timeout=10))["type"] == "pong"  # the other session saw none of it


def test_a_server_with_voice_input_off_refuses_audio(data_dir, voices, renderer) -> None:
    settings = Settings(_env_file=None, data_dir=data_dir, port=0, llm_backend="echo", voice_enabled=False)
    with running(create_app(settings, tts=voices, renderer=renderer)) as base:
        with connect(ws_url(base, "no-voice")) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
            ws.send(silence(0.06).tobytes())
            ev = json.loads(ws.recv(timeout=10))
            assert ev["type"] == "error" and ev["code"] == "voice_off", ev
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "pong"
        assert session_for(base, "no-voice")
