"""The avatar listens while the person speaks (issue 20), in a real headless Chromium whose fake microphone plays a
spoken turn: the page switches to the listening loop as the speech starts (before the server's VAD has said a word),
nods at the person's pause, and fades back out when the answer starts playing, never jumping between layers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_browser_voice import fake_mic  # noqa: F401 - the fixture
from tests.voice_audio import silence, speak

pytestmark = pytest.mark.browser

# Every animation frame: the listening layer's opacity, whether it plays, and the most opaque clip layer's opacity.
SAMPLER = """() => {
  const loop = document.getElementById('listen');
  window.samples = [];
  const tick = () => {
    const clips = [...document.querySelectorAll('video.clip')].map(v => +getComputedStyle(v).opacity);
    window.samples.push({ at: performance.now(), listen: +getComputedStyle(loop).opacity, playing: !loop.paused,
                          clip: Math.max(...clips),
                          listening: document.getElementById('layers').classList.contains('listening') });
    if (window.samples.length < 20000) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def test_the_avatar_listens_nods_at_the_pause_and_hands_over_to_its_answer(server: str, fake_mic, tts) -> None:  # noqa: F811
    # One turn with a pause in it: 300 ms, longer than the page's 200 ms pause and shorter than any hangover (350
    # ms), so it is one turn whatever Whisper makes of the first half ("...weather and", "...weather end.", once
    # "...weather.", a finished sentence that may end a turn after 350 ms of silence) while the page nods.
    first, second = speak(tts, "I was wondering about the weather and"), speak(tts, "what it is like today?")
    # A long silence after the turn: Chromium loops the file, and the turn must not come again during the test.
    page = fake_mic(server, np.concatenate([silence(1.5), first, silence(0.3), second, silence(25.0)]))
    page.wait_for_function("document.getElementById('listen').classList.contains('ready')", timeout=30000)
    assert page.evaluate("new URL(document.getElementById('listen').src).pathname") == "/avatar/listen.mp4"
    page.evaluate(SAMPLER)
    page.click("#mic")
    page.wait_for_function("window.avatarchat.stats.listening.changes.some(c => c.on)", timeout=15000)
    entered = page.evaluate("window.avatarchat.stats.listening.changes.find(c => c.on)")
    # Within a few 20 ms levels of the speech's first loud one (the page's own clock of the captured audio).
    assert entered["at"] - entered["onsetAt"] <= 100, entered
    page.wait_for_function("window.avatarchat.stats.events.some(e => e.type === 'vad')", timeout=15000)
    vad_at = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'vad').at")  # the turn's start
    assert entered["at"] < vad_at, "the page listens before the server's VAD says the person speaks"
    # The answer plays, and the avatar stops listening as it does.
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 1", timeout=60000)
    page.wait_for_function("window.avatarchat.stats.listening.changes.some(c => !c.on)", timeout=5000)
    page.wait_for_timeout(500)  # let the sampler see the fade out end
    changes = page.evaluate("window.avatarchat.stats.listening.changes")
    assert [c["on"] for c in changes] == [True, False], changes
    assert changes[1]["why"] == "answer", changes
    nods = page.evaluate("window.avatarchat.stats.listening.nods")
    assert any(n["why"] == "pause" for n in nods), nods  # the pause between the two sentences
    assert all(entered["at"] < n["at"] < changes[1]["at"] for n in nods), (nods, changes)
    samples = page.evaluate("window.samples")
    opacity = np.array([s["listen"] for s in samples])
    shown = np.nonzero(opacity > 0.99)[0]
    assert len(shown), "the listening loop was shown"
    rising, falling = opacity[: shown[0]], opacity[shown[-1]:]
    # Faded in and out (intermediate opacities on the way), never switched in one frame.
    assert ((rising > 0.05) & (rising < 0.95)).any(), rising[-20:]
    assert ((falling > 0.05) & (falling < 0.95)).any(), falling[:20]
    assert all(s["playing"] for s in samples if s["listen"] > 0.05), "a shown listening loop plays"
    # It faded out under the answer's clip: by the time it was half gone, the clip covered the stage.
    half = next(s for s in samples[shown[-1]:] if s["listen"] < 0.5)
    assert half["clip"] > 0.9, half
    assert page.evaluate("document.getElementById('listen').paused"), "paused once faded out"
