"""Voice selection: the catalogue, per-session choice, and automatic language switching by script."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from avatarchat.errors import BadRequest
from avatarchat.tts.router import VoiceRouter, script_language
from tests.helpers import decode_clip, frame_rms, session_for
from tests.test_ws import collect, open_ws


@pytest.mark.parametrize(("text", "lang"), [
    ("Hello there!", "en"), ("안녕하세요, 반갑습니다.", "ko"), ("123 !?", None),
    ("오늘 OK?", "ko"), ("The word 사랑 means love.", "en"),
])
def test_script_language(text: str, lang: str | None) -> None:
    assert script_language(text) == lang


def test_router_switches_language_by_script(voices: VoiceRouter) -> None:
    assert voices.default_voice == "piper:en_US-joe-medium"
    assert voices.choose("안녕하세요.", None).id == "espeak:ko"
    assert voices.choose("Hello.", "espeak:ko").id == "piper:en_US-joe-medium"
    assert voices.choose("Hello.", "espeak:en-us").id == "espeak:en-us"  # English voice stays for English
    assert voices.choose("12:30.", "espeak:ko").id == "espeak:ko"  # no letters: keep the choice
    with pytest.raises(BadRequest, match="Unknown voice"):
        voices.resolve("nope:nothing")


def test_voices_endpoint(server: str) -> None:
    body = httpx.get(server + "/voices").json()
    ids = {v["id"]: v for v in body["voices"]}
    assert body["default"] == "piper:en_US-joe-medium"
    assert ids["espeak:ko"]["language"] == "ko" and ids["piper:en_US-joe-medium"]["language"] == "en"


def test_chat_rejects_unknown_voice(server: str) -> None:
    r = httpx.post(server + "/chat", json={"session_id": session_for(server, "v-bad"), "message": "hi", "voice": "x:y"})
    assert r.status_code == 422 and "Unknown voice" in r.json()["error"]["message"]


def test_korean_message_to_english_default_is_spoken_in_korean(server: str) -> None:
    with open_ws(server, "v-ko") as ws:
        r = httpx.post(server + "/chat", json={"session_id": session_for(server, "v-ko"), "message": "안녕하세요. 만나서 반갑습니다."},
                       timeout=60)
        assert r.status_code == 200
        events = collect(ws, "speech_done")
    clips = [e for e in events if e["type"] == "clip_ready"]
    assert [c["voice"] for c in clips] == ["espeak:ko", "espeak:ko"]
    clip = decode_clip(httpx.get(server + clips[1]["url"]).content)
    rms = frame_rms(clip)
    assert rms.max() > 0.02 and clip.video_duration_s > 0.8  # 7 syllables of real speech
    loud, quiet = int(np.argmax(rms)), int(np.argmin(rms))
    assert np.abs(clip.frames[loud].astype(float) - clip.frames[quiet]).mean() > 0.3  # the mouth moved


def test_session_voice_is_kept(server: str) -> None:
    with open_ws(server, "v-keep") as ws:
        httpx.post(server + "/chat", json={"session_id": session_for(server, "v-keep"), "message": "First.", "voice": "espeak:en-us"})
        first = [e for e in collect(ws, "speech_done") if e["type"] == "clip_ready"]
        httpx.post(server + "/chat", json={"session_id": session_for(server, "v-keep"), "message": "Second."})
        second = [e for e in collect(ws, "speech_done") if e["type"] == "clip_ready"]
    assert first[0]["voice"] == second[0]["voice"] == "espeak:en-us"
