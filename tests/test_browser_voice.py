"""The page's microphone in a real headless Chromium whose fake microphone plays a generated WAV file, and the
page at a phone's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from tests.helpers import ARGS, CHROMIUM
from tests.voice_audio import noise, silence, speak, write_wav

pytestmark = pytest.mark.browser
SENTENCE = "Hello avatar, what can you tell me about the weather today?"
CONNECTED = "document.getElementById('status').textContent === 'connected'"


def at_48k(pcm: np.ndarray) -> np.ndarray:
    return np.clip(resample_poly(pcm.astype(np.float32), 3, 1), -32768, 32767).astype(np.int16)


@pytest.fixture
def fake_mic(browser, tmp_path: Path):  # noqa: F811
    """Launch a Chromium whose microphone plays ``audio`` (looped, as Chromium does) and open the page."""
    launched = []

    def open_page(server: str, audio: np.ndarray, viewport=None):
        wav = write_wav(tmp_path / f"mic{len(launched)}.wav", at_48k(audio), rate=48000)
        b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"])
        launched.append(b)
        page = b.new_page(bypass_csp=True, viewport=viewport or {"width": 1000, "height": 700})
        page.goto(server + "/")
        page.wait_for_function(CONNECTED, timeout=15000)
        return page

    yield open_page
    for b in launched:
        b.close()


def test_spoken_sentence_is_answered_and_a_second_one_interrupts_the_clip(server: str, fake_mic, tts) -> None:
    said = speak(tts, SENTENCE)
    # Looped by Chromium: the sentence comes again about 6.5 s later, while the avatar is saying its answer.
    page = fake_mic(server, np.concatenate([silence(1.0), said, silence(6.5 - 1.0 - len(said) / 16000)]))
    page.click("#mic")
    page.wait_for_function("window.avatarchat.stats.voice.transcripts.length >= 1", timeout=20000)
    heard = page.evaluate("window.avatarchat.stats.voice.transcripts[0]")
    assert "weather today" in heard.lower(), heard
    assert "weather today" in page.inner_text(".log li.user").lower()
    page.wait_for_selector(".log li.avatar[data-final]", timeout=15000)
    page.wait_for_function("[...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           "&& !v.paused && v.currentTime > 0.2)", timeout=30000)
    first = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'clip_ready').reply")
    page.wait_for_function(f"window.avatarchat.stats.events.some(e => e.type === 'speech_cancelled' "
                           f"&& e.reply === '{first}')", timeout=20000)
    page.wait_for_function("![...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           f"&& v.dataset.reply === '{first}')", timeout=3000)  # faded out
    # The clip playing when the person spoke again never reached its end, nor did any later one of that reply
    # (its short first chunk may well have ended before).
    cancelled_at = page.evaluate(f"window.avatarchat.stats.events.find(e => e.type === 'speech_cancelled' "
                                 f"&& e.reply === '{first}').at")
    ended = page.evaluate(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{first}').map(c => c.at)")
    assert all(at <= cancelled_at for at in ended), (ended, cancelled_at)
    assert page.evaluate("window.avatarchat.stats.voice.framesSent") > 50


def test_a_quiet_room_does_not_interrupt_a_playing_clip(server: str, fake_mic) -> None:
    """What the microphone hears while the avatar talks, after the browser's echo cancellation: room noise."""
    page = fake_mic(server, np.concatenate([silence(0.5), noise(3.0, rms=150)]))
    page.click("#mic")
    page.wait_for_function("window.avatarchat.stats.voice.framesSent > 10", timeout=10000)
    page.fill("#message", "This clip plays while the microphone is open.")
    page.click("#send")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 1", timeout=60000)
    kinds = page.evaluate("window.avatarchat.stats.events.map(e => e.type)")
    assert "speech_cancelled" not in kinds and "vad" not in kinds, kinds


def test_the_page_fits_a_phone(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True,
                            has_touch=True)
    page.goto(server + "/")
    page.wait_for_function(CONNECTED, timeout=15000)
    page.fill("#message", "A long word: https://example.org/a/very/long/path/that/does/not/break/on/its/own/at/all "
                          "and then some more words to fill the line.")
    page.click("#send")
    page.wait_for_selector(".log li.avatar[data-final]", timeout=15000)
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for sel in ("#status", "#log", ".log li.user", ".log li.avatar", "#message", "#mic", "#send", "#layers"):
        box = page.locator(sel).first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (sel, box)
    height = page.evaluate("window.innerHeight")
    for sel in ("#message", "#mic", "#send"):  # reachable without scrolling, in the lower part of the screen
        box = page.locator(sel).bounding_box()
        assert box["y"] + box["height"] <= height and box["y"] > height / 3, (sel, box)
    page.close()


def _mic_error(page) -> str:
    page.click("#mic")
    page.wait_for_selector(".log li.error", timeout=10000)
    return page.inner_text(".log li.error")


def test_a_denied_microphone_says_so_and_typing_still_works(server: str, browser) -> None:  # noqa: F811
    # A microphone exists, but the permission prompt is answered "no" (no fake UI to accept it).
    b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                    args=ARGS + ["--use-fake-device-for-media-stream", "--deny-permission-prompts"])
    try:
        page = b.new_page(bypass_csp=True)
        page.goto(server + "/")
        page.wait_for_function(CONNECTED, timeout=15000)
        assert "denied" in _mic_error(page)
        page.fill("#message", "Typing still works.")
        page.click("#send")
        page.wait_for_selector(".log li.avatar[data-final]", timeout=15000)
    finally:
        b.close()


def test_a_missing_microphone_says_so(server: str, browser) -> None:  # noqa: F811
    # Permission is granted, but this headless machine has no audio input device at all.
    b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                    args=ARGS + ["--use-fake-ui-for-media-stream"])
    try:
        page = b.new_page(bypass_csp=True)
        page.goto(server + "/")
        page.wait_for_function(CONNECTED, timeout=15000)
        message = _mic_error(page)
        assert "No microphone" in message or "could not start" in message, message
    finally:
        b.close()


def test_a_page_that_is_not_secure_explains_where_the_microphone_works(
        settings, voices, renderer, browser, tmp_path) -> None:  # noqa: F811
    from avatarchat.server import create_app
    from tests.helpers import running

    named = settings.model_copy(update={"data_dir": tmp_path, "allowed_hosts": ["avatar.test", "127.0.0.1"]})
    with running(create_app(named, tts=voices, renderer=renderer)) as base:
        port = base.rsplit(":", 1)[1]
        b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--host-resolver-rules=MAP avatar.test 127.0.0.1"])
        try:
            page = b.new_page(bypass_csp=True)
            page.goto(f"http://avatar.test:{port}/")  # plain http on a name other than localhost: not secure
            page.wait_for_function(CONNECTED, timeout=15000)
            assert page.evaluate("window.isSecureContext") is False
            assert "https://" in _mic_error(page)
        finally:
            b.close()
