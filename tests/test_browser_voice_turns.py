"""Turn-taking in a real headless Chromium with a fake microphone: hold-to-talk (Space held on the microphone
button, or a finger on it) makes one message across a long pause, and a backchannel while a clip plays holds
the clip on its frame and lets it go on from there, unanswered."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_browser_voice import fake_mic  # noqa: F401 - the fixture
from tests.voice_audio import silence, speak

pytestmark = pytest.mark.browser
RATE = 16000
LONG = ("Here is a long answer to keep the avatar talking for a while. It has several sentences, each of them "
        "said in turn. The person may say something while it speaks. Then we see what the avatar does about it.")
FRONT = "[...document.querySelectorAll('video.clip')].find(v => v.classList.contains('front'))"


class Press:
    """Hold the microphone button down and let it go: Space on the focused button, or a finger (a real touch
    through the DevTools protocol, which Chromium turns into pointer events of type "touch")."""

    def __init__(self, page, how: str) -> None:
        self.page, self.how = page, how
        box = page.locator("#mic").bounding_box()
        self.at = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
        self.cdp = page.context.new_cdp_session(page) if how == "touch" else None

    def down(self) -> None:
        if self.cdp is None:
            self.page.focus("#mic")
            self.page.keyboard.down("Space")
        else:
            self.cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [self.at]})
            # the finger slides a little off the button while it speaks: the pointer is captured, still held
            moved = {"x": self.at["x"] + 40, "y": self.at["y"] - 30}
            self.cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [moved]})

    def up(self) -> None:
        if self.cdp is None:
            self.page.keyboard.up("Space")
        else:
            self.cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


@pytest.mark.parametrize("how", ["keyboard", "touch"])
def test_holding_the_microphone_makes_one_message_across_a_long_pause(server: str, fake_mic, tts,  # noqa: F811
                                                                     how: str) -> None:
    first, second = speak(tts, "What time is it?"), speak(tts, "And what day is it today?")
    page = fake_mic(server, np.concatenate([silence(0.6), first, silence(0.9), second, silence(8.0)]))
    page.check("#hold")
    press = Press(page, how)
    press.down()
    said_s = 0.6 + len(first) / RATE + 0.9 + len(second) / RATE + 0.3
    page.wait_for_function(f"window.avatarchat.stats.voice.framesSent * 0.06 >= {said_s}", timeout=30000)
    assert page.evaluate("window.avatarchat.stats.voice.transcripts.length") == 0, "no turn ended at the pause"
    assert page.get_attribute("#mic", "aria-pressed") == "true"
    press.up()
    page.wait_for_function("window.avatarchat.stats.voice.transcripts.length >= 1", timeout=30000)
    page.wait_for_selector(".log li.avatar[data-final]", timeout=30000)
    transcripts = page.evaluate("window.avatarchat.stats.voice.transcripts")
    assert len(transcripts) == 1, transcripts
    assert "time" in transcripts[0].lower() and "day" in transcripts[0].lower(), transcripts
    assert page.locator(".log li.user").count() == 1
    assert page.evaluate("window.avatarchat.stats.events.filter(e => e.type === 'reply_text').length") == 1
    assert page.get_attribute("#mic", "aria-pressed") == "false"


def test_a_backchannel_while_a_clip_plays_holds_it_on_its_frame_and_it_goes_on_from_there(
        server: str, fake_mic, tts) -> None:  # noqa: F811
    # "Yeah." rather than "Uh huh." (which Whisper tiny.en now and then writes as words: see benchmarks/voice.py)
    page = fake_mic(server, np.concatenate([silence(0.4), speak(tts, "Yeah."), silence(15.0)]))
    page.fill("#message", LONG)
    page.click("#send")
    # A whole sentence's clip (the short first chunk may end before the person speaks).
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.length >= 1 && {FRONT} && !{FRONT}.paused "
                           f"&& {FRONT}.currentTime > 0.3", timeout=60000)
    page.click("#mic")  # the fake microphone starts now: "yeah" 0.4 s later
    page.wait_for_function("window.avatarchat.stats.holds.length >= 1", timeout=20000)
    held = page.evaluate(f"({{paused: {FRONT}.paused, shown: {FRONT}.classList.contains('shown'), "
                         f"t: {FRONT}.currentTime, volume: {FRONT}.volume}})")
    assert held["paused"] and held["shown"] and held["volume"] == 0, held  # on its frame, on screen, ducked
    page.wait_for_function("window.avatarchat.stats.releases.length >= 1", timeout=30000)
    hold, release = page.evaluate("[window.avatarchat.stats.holds[0], window.avatarchat.stats.releases[0]]")
    assert hold["reply"] and (hold["reply"], hold["seq"]) == (release["reply"], release["seq"]), (hold, release)
    assert abs(release["time"] - hold["time"]) < 0.05 and abs(held["t"] - hold["time"]) < 0.05, (hold, release)
    # The held clip plays on to its end (it is not restarted, nor skipped), and the reply goes on.
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply === '{hold['reply']}' "
                           f"&& c.seq === {hold['seq']})", timeout=30000)
    kinds = page.evaluate("window.avatarchat.stats.events.map(e => e.type)")
    assert "yield" in kinds and "resume" in kinds and "speech_cancelled" not in kinds, kinds
    assert kinds.count("reply_text") == 1, kinds  # the backchannel got no answer
    page.wait_for_selector(".log li.user.backchannel", timeout=5000)
