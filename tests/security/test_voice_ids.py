"""Attack: voice ids that are paths, unlisted names or control characters never reach a backend.

Before the fix, ``espeak:`` followed by a relative path made espeak-ng open that file as a voice and quote its
lines back in an ``error`` event, and ``piper:`` with an absolute path probed for files and loaded any
``.onnx`` into onnxruntime. Now only ids that ``GET /voices`` lists are accepted (422 before any backend runs).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from avatarchat.errors import BadRequest
from avatarchat.tts.espeak import EspeakTTS
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.router import VoiceRouter
from tests.helpers import session_for
from tests.test_ws import collect, open_ws

SECRET_LINE = "root:"  # the first field of /etc/passwd: must never appear in anything the server sends

HOSTILE = [
    "espeak:../../../../../../etc/passwd", "espeak:/etc/passwd", "espeak:..%2F..%2F..%2Fetc%2Fpasswd",
    "espeak:ko/../../../../etc/passwd", "espeak:ko\x00/etc/passwd", "espeak:ko\n-w /tmp/x", "espeak:-w",
    "espeak:--path=/etc", "piper:/etc/passwd", "piper:../../../../etc/hostname", "piper:/proc/self/environ",
    "piper:en_US-joe-medium/../../x", "google:ko-KR-Neural2-A", "openai:alloy", "espeak:", "piper", ":ko",
    "espeak:KO", "espeak:ko ", "x" * 5000, "piper:en_US-joe-medium+female/../x", "piper:/etc/passwd+female",
    "espeak:ko+f3", "espeak:ko+../../x",
]


@pytest.mark.parametrize("voice", HOSTILE)
def test_router_refuses_unlisted_voice_ids(voices: VoiceRouter, voice: str) -> None:
    with pytest.raises(BadRequest, match="Unknown voice") as info:
        voices.resolve(voice)
    assert len(info.value.public) <= 300


@pytest.mark.parametrize("voice", HOSTILE)
def test_chat_with_hostile_voice_is_422_and_leaks_nothing(server: str, voice: str) -> None:
    sid = session_for(server, "atk-voice")
    with open_ws(server, "atk-voice") as ws:
        r = httpx.post(server + "/chat", json={"session_id": sid, "message": "Hello there.", "voice": voice},
                       timeout=30)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "bad_request"
        assert SECRET_LINE not in r.text
        # The session still works, with a listed voice, and no event quotes a file.
        r = httpx.post(server + "/chat", json={"session_id": sid, "message": "Still here."}, timeout=30)
        assert r.status_code == 200
        events = collect(ws, "speech_done")
    assert SECRET_LINE not in json.dumps(events)
    assert [e["type"] for e in events].count("clip_ready") == 1


async def test_espeak_backend_refuses_unlisted_voices_before_running() -> None:
    tts = EspeakTTS()
    for voice in ("../../../../etc/passwd", "/etc/passwd", "ko/../../etc/passwd", "-w", "ko\n"):
        with pytest.raises(BadRequest, match="no voice") as info:
            await tts.synthesize("hello", voice=voice)
        assert SECRET_LINE not in info.value.message


def test_piper_backend_never_opens_a_path_it_was_given(tts: PiperTTS, tmp_path) -> None:
    bait = tmp_path / "bait.onnx"
    bait.write_bytes(b"not a model")
    (tmp_path / "bait.onnx.json").write_text("{}")
    for voice in (str(bait), "/etc/passwd", "../../etc/passwd"):
        with pytest.raises(BadRequest, match="no voice"):
            asyncio.run(tts.synthesize("hello", voice=voice))
    assert tts.voices() == ["en_US-joe-medium", "en_US-joe-medium+female"]


KOKORO_HOSTILE = ["kokoro:../../../../etc/passwd", "kokoro:/etc/passwd", "kokoro:jf_alpha/../../x",
                  "kokoro:jf_alpha+../../x", "kokoro:jf_alpha+ja", "kokoro:jf_alpha+", "kokoro:JF_ALPHA",
                  "kokoro:jf_alpha ", "kokoro:-w", "kokoro:jf_alpha\n-w /tmp/x", "kokoro:", "kokoro"]


def test_router_with_kokoro_lists_its_voices_and_refuses_anything_else() -> None:
    from avatarchat.tts.kokoro import KokoroTTS

    router = VoiceRouter({"kokoro": KokoroTTS()}, primary="kokoro", script_defaults={})
    assert "kokoro:jf_alpha" in router.voices() and "kokoro:jm_kumo+ko" in router.voices()
    for voice in KOKORO_HOSTILE:
        with pytest.raises(BadRequest, match="Unknown voice"):
            router.resolve(voice)
