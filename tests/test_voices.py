"""Voice selection: the catalogue, per-session choice, and switching voice only for a script the chosen voice's
language cannot read; calibration with the voice itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from avatarchat.data import Speech
from avatarchat.errors import BadRequest
from avatarchat.languages import voice_scripts
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.render.mouth_track import MouthTrack
from avatarchat.render.visemes import calibration_words
from avatarchat.server import create_app
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.router import VoiceRouter
from avatarchat.writing import dominant_script
from tests.helpers import decode_clip, frame_rms, running, session_for
from tests.test_ws import collect, open_ws


@pytest.mark.parametrize(("text", "script"), [
    ("Hello there!", "Latin"), ("안녕하세요, 반갑습니다.", "Hangul"), ("123 !?", None),
    ("오늘 OK?", "Hangul"), ("The word 사랑 means love.", "Latin"), ("Grüße aus Köln!", "Latin"),
    ("Привет, как дела?", "Cyrillic"), ("你好，世界。", "Han"), ("今日は良い天気です。", "Kana"),
])
def test_dominant_script_is_the_script_of_most_letters(text: str, script: str | None) -> None:
    assert dominant_script(text) == script


def test_voices_read_the_scripts_of_their_language() -> None:
    assert voice_scripts("espeak", "de") == {"Latin"}
    assert voice_scripts("piper", "en_US-joe-medium") == {"Latin"}
    assert voice_scripts("google", "ko-KR-Neural2-A") == {"Hangul"}
    assert voice_scripts("espeak", "ja") == {"Han", "Kana"}
    assert voice_scripts("espeak", "cmn-latn-pinyin") == {"Han", "Latin"}
    assert voice_scripts("openai", "alloy") is None  # speaks anything


def test_router_switches_language_by_script(voices: VoiceRouter) -> None:
    assert voices.default_voice == "piper:en_US-joe-medium"
    assert voices.choose("안녕하세요.", None).id == "espeak:ko"
    assert voices.choose("Hello.", "espeak:ko").id == "piper:en_US-joe-medium"
    assert voices.choose("Hello.", "espeak:en-us").id == "espeak:en-us"  # English voice stays for English
    assert voices.choose("12:30.", "espeak:ko").id == "espeak:ko"  # no letters: keep the choice
    with pytest.raises(BadRequest, match="Unknown voice"):
        voices.resolve("nope:nothing")


@pytest.mark.parametrize(("text", "chosen", "speaker"), [
    ("Guten Tag, wie geht es Ihnen heute?", "espeak:de", "espeak:de"),
    ("Grüße aus München!", "espeak:de", "espeak:de"),
    ("Bonjour, je m'appelle Claire.", "espeak:fr-fr", "espeak:fr-fr"),
    ("¿Dónde está la estación?", "espeak:es", "espeak:es"),
    ("Das Wort 사랑 heißt Liebe.", "espeak:de", "espeak:de"),  # a Korean word inside German stays German
    ("안녕하세요, 반갑습니다.", "espeak:de", "espeak:ko"),
    ("Hello, how are you?", "espeak:ko", "piper:en_US-joe-medium"),
    ("오늘 OK?", "espeak:ko", "espeak:ko"),  # an English word inside Korean stays Korean
    ("2024 - 12:30!", "espeak:de", "espeak:de"),  # no letters: keep the choice
    ("2024 - 12:30!", "espeak:ko", "espeak:ko"),
    ("Hallo!", "espeak:ru", "piper:en_US-joe-medium"),  # Latin to a Russian voice: the Latin default
    ("今日は良い天気です。", "espeak:cmn", "espeak:ja"),  # kana: Japanese, which Mandarin cannot read
    ("你好，世界。", "espeak:ja", "espeak:ja"),  # Japanese reads Han characters
])
def test_router_keeps_a_voice_for_every_script_its_language_reads(voices: VoiceRouter, text: str, chosen: str,
                                                                    speaker: str) -> None:
    assert voices.choose(text, chosen).id == speaker


def test_cyrillic_to_a_german_voice_goes_to_the_russian_voice(voices: VoiceRouter) -> None:
    """No voice is configured for Cyrillic, so the router uses a listed voice of the script's main language
    (espeak's Russian) rather than having German letter rules read Russian."""
    assert voices.choose("Привет, как дела?", "espeak:de").id == "espeak:ru"
    assert voices.choose("Привет, как дела?", "espeak:uk").id == "espeak:uk"  # Ukrainian reads Cyrillic itself


def test_a_script_without_any_voice_keeps_the_chosen_voice(tts) -> None:
    only_piper = VoiceRouter({"piper": tts}, primary="piper", script_defaults={})
    assert only_piper.choose("안녕하세요.", None).id == "piper:en_US-joe-medium"


def test_a_call_made_alone_speaks_through_a_second_session_with_more_threads() -> None:
    """The router hands ``alone`` to the backend; Piper then runs the voice's second onnxruntime session (two
    threads), loaded at warm-up, and says the same words: the same length within Piper's own variation."""
    tts = PiperTTS("en_US-joe-medium+female", alone_threads=2)
    tts.warm_up()
    threads = sorted(v.session.get_session_options().intra_op_num_threads for v in tts._loaded.values())
    assert threads == [1, 2]
    router = VoiceRouter({"piper": tts}, primary="piper", script_defaults={})
    text = "The first words of a reply are the ones the person waits for."
    alone = asyncio.run(router.synthesize(text, None, alone=True))
    shared = asyncio.run(router.synthesize(text, None))
    assert len(tts._loaded) == 2  # no third load: each call used one of the two sessions
    assert abs(alone.duration_s - shared.duration_s) < 0.25 * shared.duration_s, (alone.duration_s, shared.duration_s)
    assert min(float(np.sqrt(np.mean(s.pcm.astype(np.float64) ** 2))) for s in (alone, shared)) > 500
    assert PiperTTS(alone_threads=1).alone_threads == 1  # not more than the shared session's: off


def test_the_korean_default_voice_is_calibrated_at_start_up_not_on_the_first_korean_reply(settings, voices,
                                                                                          tmp_path) -> None:
    """Its mouth shapes used to be learnt when the first Korean sentence was voiced (~1.6 s more for that reply
    with Kokoro); now the server learns them in the background once it is up, with no request at all."""
    renderer = MeshWarpRenderer(cache_dir=tmp_path / "avatars", motion_scale=0.0)
    korean = voices.script_defaults["Hangul"]
    assert not renderer.is_calibrated(korean)
    app = create_app(settings.model_copy(update={"data_dir": tmp_path}), tts=voices, renderer=renderer)
    with running(app):
        deadline = time.monotonic() + 30
        while not renderer.is_calibrated(korean) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert renderer.is_calibrated(korean)
        assert renderer.is_calibrated(voices.script_defaults["Latin"])


def test_calibration_words_follow_the_voice_language() -> None:
    assert calibration_words("piper:en_US-joe-medium") == ("Ah.", "Ee.", "Ooh.", "Mmm.")
    assert calibration_words("espeak:ko") == ("아.", "이.", "우.", "음.")
    assert calibration_words("espeak:de")[:3] == ("Aah.", "Ih.", "Uh.")  # German "Ee" would be an e, not an i
    assert calibration_words("espeak:es")[:3] == ("A.", "I.", "U.")
    assert calibration_words("espeak:it") == calibration_words("espeak:pt")  # the generic Latin-script words
    assert calibration_words("espeak:ru")[0] == "А."  # Cyrillic, not Latin A
    assert calibration_words("openai:alloy") == calibration_words(None) == ("Ah.", "Ee.", "Ooh.", "Mmm.")


def test_calibration_synthesizes_with_the_voice_itself(voices: VoiceRouter) -> None:
    """Unrouted synthesis is the voice's own, whatever the words' script: an Arabic voice has no spellings of its
    own and says the English words, which routing by script would have handed to Piper."""
    async def speak() -> dict[str, Speech]:
        espeak = voices.backends["espeak"]
        return {
            "de": await voices.synthesize("Aah.", "espeak:de", route=False),
            "de direct": await espeak.synthesize("Aah.", "de"),
            "ar": await voices.synthesize("Ah.", "espeak:ar", route=False),
            "ar direct": await espeak.synthesize("Ah.", "ar"),
            "ar routed": await voices.synthesize("Ah.", "espeak:ar"),
            "piper": await voices.backends["piper"].synthesize("Ah."),
        }

    got = asyncio.run(speak())
    assert calibration_words("espeak:ar")[0] == "Ah."
    np.testing.assert_array_equal(got["de"].pcm, got["de direct"].pcm)  # espeak-ng is deterministic
    np.testing.assert_array_equal(got["ar"].pcm, got["ar direct"].pcm)
    assert not np.array_equal(got["ar"].pcm, got["piper"].pcm)
    assert voices.choose("Ah.", "espeak:ar").id == "piper:en_US-joe-medium"  # what routing would have done
    assert len(got["ar routed"].pcm) != len(got["ar"].pcm) or not np.array_equal(got["ar routed"].pcm, got["ar"].pcm)


def test_voices_endpoint(server: str) -> None:
    body = httpx.get(server + "/voices").json()
    ids = {v["id"]: v for v in body["voices"]}
    assert body["default"] == "piper:en_US-joe-medium"
    assert ids["espeak:ko"]["language"] == "ko" and ids["piper:en_US-joe-medium"]["language"] == "en"


def test_voices_carry_human_labels_with_espeak_grouped_apart_as_robotic(server: str) -> None:
    ids = {v["id"]: v for v in httpx.get(server + "/voices").json()["voices"]}
    joe, ko = ids["piper:en_US-joe-medium"], ids["espeak:ko"]
    assert (joe["label"], joe["language_name"], joe["gender"], joe["tier"], joe["group"]) == (
        "Joe", "English (US)", "male", "natural", None)
    assert ids["piper:en_US-joe-medium+female"]["gender"] == "female"
    assert (ko["label"], ko["tier"], ko["group"]) == ("Korean", "robotic", "espeak-ng")
    espeak = [v for v in ids.values() if v["backend"] == "espeak"]
    assert len(espeak) > 100 and {v["group"] for v in espeak} == {"espeak-ng"}
    assert {v["tier"] for v in espeak} == {"robotic"}
    assert ids["espeak:de"]["label"] == "German"


def test_chat_rejects_unknown_voice(server: str) -> None:
    r = httpx.post(server + "/chat", json={"session_id": session_for(server, "v-bad"), "message": "hi", "voice": "x:y"})
    assert r.status_code == 422 and "Unknown voice" in r.json()["error"]["message"]


def test_korean_message_to_english_default_is_spoken_in_korean(server: str) -> None:
    with open_ws(server, "v-ko") as ws:
        r = httpx.post(server + "/chat", json={"session_id": session_for(server, "v-ko"),
                                               "message": "안녕하세요. 만나서 반갑습니다."},
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
        httpx.post(server + "/chat", json={"session_id": session_for(server, "v-keep"), "message": "First.",
                                           "voice": "espeak:en-us"})
        first = [e for e in collect(ws, "speech_done") if e["type"] == "clip_ready"]
        httpx.post(server + "/chat", json={"session_id": session_for(server, "v-keep"), "message": "Second."})
        second = [e for e in collect(ws, "speech_done") if e["type"] == "clip_ready"]
    assert first[0]["voice"] == second[0]["voice"] == "espeak:en-us"


def same_track(a: MouthTrack, b: MouthTrack) -> bool:
    return all(np.array_equal(x, y) for x, y in zip((a.open, a.wide, a.round), (b.open, b.wide, b.round), strict=True))


def calibrated_renderer(tmp_path: Path, voice: str, speak: Callable[[str], Speech]) -> MeshWarpRenderer:
    r = MeshWarpRenderer(cache_dir=tmp_path / voice.replace(":", "-"))
    r.calibrate(voice, {shape: speak(word) for shape, word in r.calibration_words(voice).items()})
    return r


@pytest.mark.parametrize(("voice", "message", "session"), [
    ("espeak:de", "Guten Morgen! Wie geht es dir heute?", "v-de"),
    ("espeak:ar", "مرحبا، كيف حالك اليوم؟", "v-ar"),  # calibration words in English: must not go to Piper
])
def test_a_voice_speaks_its_language_and_is_calibrated_by_itself(
        server: str, voices: VoiceRouter, renderer: MeshWarpRenderer, tmp_path: Path, voice: str, message: str,
        session: str) -> None:
    with open_ws(server, session) as ws:
        r = httpx.post(server + "/chat", json={"session_id": session_for(server, session), "voice": voice,
                                               "message": message},
                       timeout=60)
        assert r.status_code == 200
        events = collect(ws, "speech_done")
    clips = [e for e in events if e["type"] == "clip_ready"]
    assert clips and {c["voice"] for c in clips} == {voice}

    # The server learnt the voice's mouth shapes from the voice saying its words, not from Piper saying them.
    espeak, piper = voices.backends["espeak"], voices.backends["piper"]
    name = voice.split(":", 1)[1]
    by_itself = calibrated_renderer(tmp_path, voice, lambda w: asyncio.run(espeak.synthesize(w, name)))
    by_piper = calibrated_renderer(tmp_path, voice, lambda w: asyncio.run(piper.synthesize(w)))
    speech = asyncio.run(espeak.synthesize(message, name))
    served = renderer.track(speech, voice)
    assert same_track(served, by_itself.track(speech, voice))
    assert not same_track(served, by_piper.track(speech, voice))
