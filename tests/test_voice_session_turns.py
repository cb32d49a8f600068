"""Spoken turns belong to the session, not to the socket they came in on (issue 20): a page that closes its socket
right after asking still gets the answer when it reconnects, and history alternates. The voice picker's choice
(a ``voice`` frame) applies to the next spoken turn at once, and a Korean voice has that turn heard in Korean by
the multilingual Whisper. Real server on loopback, real socket, real speech from Piper and Kokoro."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from avatarchat.server import create_app
from avatarchat.tts.kokoro import KokoroTTS
from benchmarks.errors import cer
from tests.fakes import FakeLLM
from tests.helpers import running, session_for
from tests.test_voice_ws import stream, words
from tests.test_ws import collect, open_ws, ws_url
from tests.voice_audio import silence, speak

KOREAN = "저는 학생입니다."
SENTENCE = "What can you tell me about the weather today?"  # no comma: its pause could end the turn


def until_final(ws, timeout_s: float = 60.0) -> list[dict]:
    """Events up to the turn's final transcript."""
    events: list[dict] = []
    while not events or not (events[-1]["type"] == "transcript" and events[-1]["final"]):
        events.append(json.loads(ws.recv(timeout=timeout_s)))
    return events


def hangul_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("\uac00" <= c <= "\ud7a3" for c in letters) / max(1, len(letters))


@pytest.fixture(scope="module")
def slow(settings, voices, renderer):
    """The server with an LLM that answers (echoes) after a second, as a network LLM would: long enough for a
    socket to close while the answer is being written."""
    llm = FakeLLM(delay_s=1.0)
    with running(create_app(settings, llm=llm, tts=voices, renderer=renderer)) as base:
        yield base, llm


@pytest.fixture(scope="module")
def utterance(tts) -> np.ndarray:
    return np.concatenate([silence(0.3), speak(tts, SENTENCE), silence(0.8)])


@pytest.fixture(scope="module")
def korean(settings) -> np.ndarray:
    """Korean said by Kokoro's Korean voice (clearer than espeak-ng's for Whisper)."""
    kokoro = KokoroTTS(cache_dir=Path(settings.model_cache_dir))
    return np.concatenate([silence(0.3), speak(kokoro, KOREAN, "jf_alpha+ko"), silence(0.8)])


def test_a_socket_closed_right_after_a_spoken_question_still_gets_the_answer(slow, utterance) -> None:
    base, llm = slow
    with open_ws(base, "closed-1") as ws:
        stream(ws, utterance, speed=1.2)
        heard = until_final(ws)  # the question is in; its answer is being written
    last = [e["id"] for e in heard if "id" in e][-1]
    with connect(ws_url(base, "closed-1") + f"&after={last}") as ws:  # the page reloads
        state = json.loads(ws.recv(timeout=10))
        assert state["type"] == "session_state" and state["resumed"] is True, state
        events = collect(ws, "speech_done", timeout_s=60)
    reply = next(e for e in events if e["type"] == "reply_text")
    assert words(reply["text"]) == words(SENTENCE), reply
    assert any(e["type"] == "clip_ready" and e["reply"] == reply["reply"] for e in events)
    # History alternates: the question has its answer, so the next turn's LLM call sees user, assistant, user.
    with connect(ws_url(base, "closed-1")) as ws:
        state = json.loads(ws.recv(timeout=10))
    assert [m["role"] for m in state["history"]] == ["user", "assistant"], state["history"]
    r = httpx.post(base + "/chat", json={"session_id": session_for(base, "closed-1"), "message": "And tomorrow?",
                                         "queue": True}, timeout=60)  # not a barge-in: the answer stays as written
    assert r.status_code == 200, r.text
    roles = [m.role for m in llm.seen[-1]]
    assert roles == ["user", "assistant", "user"], llm.seen[-1]
    assert words(llm.seen[-1][1].content) == words(SENTENCE)


def test_the_voice_picker_applies_to_the_next_spoken_turn_and_a_korean_voice_has_it_heard_in_korean(
        server: str, korean, utterance) -> None:
    with open_ws(server, "picker-1") as ws:
        ws.send(json.dumps({"type": "voice", "voice": "espeak:no-such-voice"}))
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and error["code"] == "bad_request" and "GET /voices" in error["message"]
        ws.send(json.dumps({"type": "voice", "voice": "espeak:ko"}))
        stream(ws, korean, speed=1.2)
        final = until_final(ws)[-1]
        assert hangul_share(final["text"]) > 0.8 and cer(KOREAN, final["text"]) <= 0.5, final
        collect(ws, "speech_done", timeout_s=60)
        ws.send(json.dumps({"type": "voice", "voice": "piper:en_US-joe-medium"}))  # and back, at once
        stream(ws, utterance, speed=1.2)
        final = until_final(ws)[-1]
        assert words(final["text"]) == words(SENTENCE), final
