"""The page in a real headless Chromium (Debian's), driven by Playwright: type, see the reply, watch the clip play."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


def test_page_plays_the_reply_clip(server: str, browser, output_dir: Path) -> None:
    page = browser.new_page(bypass_csp=True, viewport={"width": 1100, "height": 640})
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    # The idle loop is playing (the avatar is never a frozen picture).
    page.wait_for_function("document.getElementById('idle').currentTime > 0.2", timeout=15000)

    page.fill("#message", "Hello avatar. Please say something nice.")
    page.click("#send")
    page.wait_for_selector(".log li.avatar[data-final]", timeout=15000)
    assert page.inner_text(".log li.avatar") == "Hello avatar. Please say something nice."

    # A clip layer is playing, in front, with time advancing.
    playing = """() => [...document.querySelectorAll('video.clip')].some(v =>
        v.classList.contains('shown') && !v.paused && v.currentTime > 0.3 && v.src.includes('/clips/'))"""
    page.wait_for_function(playing, timeout=30000)
    t1 = page.evaluate("Math.max(...[...document.querySelectorAll('video.clip')].map(v => v.currentTime))")
    page.wait_for_timeout(300)
    t2 = page.evaluate("Math.max(...[...document.querySelectorAll('video.clip')].map(v => v.currentTime))")
    assert t2 > t1, (t1, t2)
    page.screenshot(path=str(output_dir / "browser-speaking.png"))

    # Both sentences play in order, then the page returns to the idle loop.
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 2", timeout=30000)
    played = page.evaluate("window.avatarchat.stats.clipsPlayed.map(c => c.seq)")
    assert played[:2] == [0, 1]
    page.wait_for_function("![...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown'))",
                           timeout=5000)
    assert page.evaluate("!document.getElementById('idle').paused")
    gaps = page.evaluate("window.avatarchat.stats.gapsMs")
    assert len(gaps) >= 1
    assert page.evaluate("window.avatarchat.stats.errors") == [], console
    page.close()


def test_page_shows_errors_readably(server: str, browser) -> None:
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.evaluate("document.getElementById('message').removeAttribute('maxlength')")
    page.fill("#message", "x" * 2500)
    page.click("#send")
    page.wait_for_selector(".log li.error", timeout=10000)
    assert "limit is 2000" in page.inner_text(".log li.error")
    page.close()


@pytest.mark.slow
def test_consecutive_clips_play_in_order_without_gaps(server: str, browser) -> None:
    """Two clips of one reply play back to back; the next starts within a frame of the previous one ending.
    Then the same clips are replayed as events arriving out of order (seq 1 before seq 0): order still holds."""
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.fill("#message", "This is the first one. And this is the second one.")  # a first sentence too short to cut
    page.click("#send")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 2", timeout=60000)
    gaps = page.evaluate("window.avatarchat.stats.gapsMs")
    assert len(gaps) == 1
    assert gaps[0] <= 40.0, gaps  # at most one frame at 25 fps

    urls = page.evaluate("window.avatarchat.stats.clipsPlayed.map(c => c.url)")
    page.evaluate(
        """([a, b]) => {
            const h = window.avatarchat.handle;
            h({type: 'clip_ready', session: 'x', reply: 'replay', job: 'j1', seq: 1, url: b, text: '', duration_s: 1});
            setTimeout(() => h({type: 'clip_ready', session: 'x', reply: 'replay', job: 'j0', seq: 0, url: a,
                                text: '', duration_s: 1}), 400);
            setTimeout(() => h({type: 'speech_done', session: 'x', reply: 'replay', clips: 2}), 500);
        }""",
        urls[:2],
    )
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.filter(c => c.reply === 'replay').length >= 2",
                           timeout=60000)
    replay = page.evaluate("window.avatarchat.stats.clipsPlayed.filter(c => c.reply === 'replay').map(c => c.seq)")
    assert replay == [0, 1]
    page.close()


def test_voice_picker_changes_the_next_clips_voice(server: str, browser) -> None:
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.wait_for_function("document.querySelectorAll('#voice option').length > 2", timeout=10000)
    assert page.input_value("#voice") == "piper:en_US-joe-medium"
    page.select_option("#voice", "espeak:en-us")
    page.fill("#message", "Now I speak with another voice.")
    page.click("#send")
    page.wait_for_function("window.avatarchat.stats.events.some(e => e.type === 'clip_ready')", timeout=30000)
    voices = page.evaluate("window.avatarchat.stats.events.filter(e => e.type === 'clip_ready').map(e => e.voice)")
    assert voices and set(voices) == {"espeak:en-us"}, voices  # the first chunk, and the rest if it came already
    page.close()


def test_barge_in_fades_out_the_old_reply(server: str, browser) -> None:
    """A new message while the avatar speaks: the old clip fades out, none of its later clips play, the new
    reply plays."""
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.fill("#message", "This is a long first reply. It has many sentences. They keep going. "
                          "And going on. Until someone interrupts. Which they will.")
    page.click("#send")
    page.wait_for_function("[...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           "&& !v.paused && v.currentTime > 0.2)", timeout=30000)
    first_reply = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'clip_ready').reply")
    page.fill("#message", "Sorry to interrupt.")
    page.click("#send")
    page.wait_for_function(f"window.avatarchat.stats.events.some(e => e.type === 'speech_cancelled' "
                           f"&& e.reply === '{first_reply}')", timeout=15000)
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{first_reply}')",
                           timeout=60000)
    played = page.evaluate("window.avatarchat.stats.clipsPlayed.map(c => c.reply)")
    # The interrupted clip never reaches `ended`; nothing of the first reply plays after it.
    assert first_reply not in played, played
    page.close()
