"""The page in a real headless Chromium against the real server (issue 17 and 18): a socket drop and an aborted clip
download mid-reply, a reload mid-reply (the log comes back, the cut sentence is spoken again, the idle loop breathes
behind "tap to hear"), the "answer coming" cue, plain-words errors, the offline status and the landscape layouts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import ARGS, CHROMIUM
from tests.test_browser_faults import CONNECTED, FOUR, first_reply, open_page, played, say

pytestmark = pytest.mark.browser
PLAYING = "(seq) => { const p = window.avatarchat.player; const s = p.active === null ? null : p.slotOf(p.active);" \
          " const v = p.active === null ? null : document.querySelectorAll('video.clip')[p.active];" \
          " return s && s.seq === seq && v && !v.paused && v.currentTime > 0.3; }"


def test_a_socket_drop_mid_reply_loses_no_clip_and_its_reports_follow(server: str, browser) -> None:  # noqa: F811
    """The socket is cut while the first clip plays and refused for 3 s: every clip plays in order, the reports
    made meanwhile reach the server on the new socket, and a later reply plays."""
    context, page = open_page(browser, server)
    sockets: list[dict] = []
    state = {"down": False}

    def route(ws) -> None:
        if state["down"]:
            ws.close()
            return
        upstream = ws.connect_to_server()
        seen: dict = {"route": ws, "sent": []}
        sockets.append(seen)

        def to_server(message) -> None:
            seen["sent"].append(message)
            upstream.send(message)

        ws.on_message(to_server)

    page.route_web_socket("**/ws*", route)
    page.reload()
    page.wait_for_function(CONNECTED, timeout=15000)
    say(page, FOUR)
    reply = first_reply(page)
    page.wait_for_function(PLAYING, arg=0, timeout=30000)
    state["down"] = True
    sockets[-1]["route"].close()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('disconnected')", timeout=5000)
    time.sleep(3)
    state["down"] = False
    page.wait_for_function(CONNECTED, timeout=40000)
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= 4",
                           timeout=60000)
    assert played(page, reply) == [0, 1, 2, 3]
    assert page.evaluate("window.avatarchat.stats.lost") == []
    after = [json.loads(m) for m in sockets[-1]["sent"] if isinstance(m, str)]
    reported = [(m["type"], m["seq"]) for m in after if m.get("reply") == reply]
    assert ("clip_ended", 0) in reported, after  # made while the socket was down, sent on the new one
    say(page, "Are you still there?")
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{reply}')", timeout=60000)
    context.close()


@pytest.mark.parametrize("aborts", [1, 99])
def test_an_aborted_clip_download_is_retried_once_then_skipped_and_said(server: str, browser,  # noqa: F811
                                                                        aborts: int) -> None:
    """Seq 1's download is aborted (a dropped connection), once or every time: once, the retry plays it; every
    time, it alone is lost, the person is told, and the clips after it and a later reply play."""
    context, page = open_page(browser, server)
    urls: list[str] = []
    aborted: list[str] = []

    def clips(route) -> None:
        path = route.request.url.split("?")[0].split("#")[0]
        if path not in urls:
            urls.append(path)
        if len(urls) >= 2 and path == urls[1] and len(aborted) < aborts:
            aborted.append(path)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/clips/*.mp4", clips)
    say(page, FOUR)
    reply = first_reply(page)
    want = 4 if aborts == 1 else 3
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= {want}",
                           timeout=60000)
    lines = page.locator(".log li.error").all_inner_texts()
    if aborts == 1:
        assert played(page, reply) == [0, 1, 2, 3]
        assert page.evaluate("window.avatarchat.stats.lost") == []
    else:
        assert played(page, reply) == [0, 2, 3]
        assert page.evaluate("window.avatarchat.stats.lost.map(l => l.seq)") == [1]
        assert any("could not be played" in e and "skipped" in e for e in lines), lines
    page.unroute("**/clips/*.mp4")
    say(page, "And now?")
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{reply}')", timeout=60000)
    context.close()


def test_a_reload_mid_reply_restores_the_log_and_speaks_the_cut_sentence_again(server: str,
                                                                                 browser) -> None:  # noqa: F811
    context, page = open_page(browser, server)
    say(page, "Hello there. " + FOUR)
    reply = first_reply(page)
    page.wait_for_function(PLAYING, arg=1, timeout=60000)
    page.reload()
    page.wait_for_function(CONNECTED, timeout=15000)
    users = page.locator(".log li.user").all_inner_texts()
    avatars = page.locator(".log li.avatar").all_inner_texts()
    assert users == ["Hello there. " + FOUR], users
    assert len(avatars) == 1 and "Then the second one follows." in avatars[0], avatars
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= 4",
                           timeout=60000)
    assert played(page, reply) == [1, 2, 3, 4]  # seq 1 was cut short: it is spoken again from its start
    context.close()


def test_a_reload_without_autoplay_keeps_the_idle_loop_breathing_behind_the_tap_prompt(
        server: str, browser, output_dir: Path) -> None:  # noqa: F811
    """Chromium's default autoplay policy: after a reload (no gesture yet) the clip may not play with sound. The
    idle loop stays in view and moving behind "tap to hear"; the tap plays the rest of the reply."""
    strict = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                         args=[a for a in ARGS if not a.startswith("--autoplay-policy")])
    try:
        page = strict.new_page(bypass_csp=True, viewport={"width": 1000, "height": 700})
        page.goto(server + "/")
        page.wait_for_function(CONNECTED, timeout=15000)
        say(page, FOUR)  # a click: the page may play with sound
        reply = first_reply(page)
        page.wait_for_function(PLAYING, arg=0, timeout=60000)
        page.reload()
        page.wait_for_function(CONNECTED, timeout=15000)
        page.wait_for_selector("#unlock", state="visible", timeout=15000)
        assert page.evaluate("[...document.querySelectorAll('video.clip')].every(v => !v.classList.contains('shown'))")
        t1 = page.evaluate("document.getElementById('idle').currentTime")
        page.wait_for_timeout(500)
        t2 = page.evaluate("document.getElementById('idle').currentTime")
        assert t2 != t1 and not page.evaluate("document.getElementById('idle').paused"), (t1, t2)
        page.screenshot(path=str(output_dir / "browser-tap-to-hear.png"))
        page.click("#unlock")
        page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= 3",
                               timeout=60000)
        assert played(page, reply)[0] == 0  # the cut sentence again, from its start
    finally:
        strict.close()


def test_the_answer_coming_cue_shows_at_once_and_goes_with_the_first_clip(server: str, browser) -> None:  # noqa: F811
    context, page = open_page(browser, server)
    page.evaluate("document.addEventListener('submit', () => { window.sentAt = performance.now(); }, true)")
    page.fill("#message", "Show me that you are thinking.")
    page.press("#message", "Enter")
    page.wait_for_function("window.avatarchat.stats.thinking.length >= 1", timeout=5000)
    cue = page.evaluate("window.avatarchat.stats.thinking[0]")
    assert cue["on"] is True and cue["at"] - page.evaluate("window.sentAt") < 100, cue
    assert "preparing an answer" in page.inner_text("#thinking")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 1", timeout=60000)
    assert page.evaluate("document.getElementById('layers').classList.contains('thinking')") is False
    assert page.inner_text("#thinking") == ""
    off = page.evaluate("window.avatarchat.stats.thinking[1]")
    started = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'clip_ready').at")
    assert off["on"] is False and off["at"] >= started

    # The end of a spoken turn shows it too; a reply that comes as text only takes it away.
    page.evaluate("window.avatarchat.handle({type: 'vad', session: 'x', state: 'silence'})")
    assert page.evaluate("document.getElementById('layers').classList.contains('thinking')") is True
    page.evaluate("window.avatarchat.handle({type: 'speech_done', session: 'x', reply: 'text-only', clips: 0,"
                  " sentences: 1})")
    assert page.evaluate("document.getElementById('layers').classList.contains('thinking')") is False
    page.evaluate("window.avatarchat.handle({type: 'vad', session: 'x', state: 'silence'})")  # a turn of no words
    page.evaluate("window.avatarchat.handle({type: 'transcript', session: 'x', text: '', final: true})")
    assert page.evaluate("document.getElementById('layers').classList.contains('thinking')") is False

    # A message the server refuses takes it away, with the reason in words.
    page.evaluate("document.getElementById('message').removeAttribute('maxlength')")
    page.fill("#message", "x" * 2500)
    page.press("#message", "Enter")
    page.wait_for_selector(".log li.error", timeout=10000)
    assert page.evaluate("document.getElementById('layers').classList.contains('thinking')") is False
    context.close()


def test_errors_and_the_network_state_are_said_in_plain_words(server: str, browser) -> None:  # noqa: F811
    context, page = open_page(browser, server)
    page.route("**/chat", lambda route: route.abort("connectionrefused"))
    say(page, "Does this arrive?")
    page.wait_for_selector(".log li.error", timeout=10000)
    line = page.inner_text(".log li.error")
    assert "not sent" in line and "could not be reached" in line and "TypeError" not in line, line
    page.unroute("**/chat")
    context.set_offline(True)
    page.wait_for_function("document.getElementById('status').textContent.includes('no network')", timeout=5000)
    context.set_offline(False)
    page.wait_for_function(CONNECTED, timeout=15000)
    page.evaluate("window.avatarchat.handle({type: 'error', session: 'x', code: 'unknown_session',"
                  " message: 'Unknown or expired session; start a new one with POST /session.'})")
    assert "POST" not in page.inner_text("#log")
    context.close()


@pytest.mark.parametrize("size", [(844, 390), (1024, 768)], ids=["landscape-phone", "tablet"])
def test_landscape_phones_and_tablets_get_a_usable_layout(server: str, browser, output_dir: Path,  # noqa: F811
                                                          size: tuple[int, int]) -> None:
    width, height = size
    mobile = width < 900
    context, page = open_page(browser, server, viewport={"width": width, "height": height}, is_mobile=mobile,
                              has_touch=mobile)
    say(page, "A reply to see the layout with.")
    page.wait_for_selector(".log li.avatar[data-final]", timeout=15000)
    page.screenshot(path=str(output_dir / f"browser-{width}x{height}.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#message").bounding_box()
    assert box["width"] >= 200, box  # a text box one can type in
    for sel in ("#message", "#send", "#mic", "#layers", "#status"):  # all on screen, none below the fold
        b = page.locator(sel).bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= width + 0.5 and b["y"] >= 0 \
            and b["y"] + b["height"] <= height + 0.5, (sel, b)
    assert page.locator("#layers").bounding_box()["height"] >= min(300, height * 0.7)  # the avatar stays big
    context.close()


def test_a_socket_whose_pings_get_no_answer_is_dropped_and_reconnected(server: str, browser) -> None:  # noqa: F811
    """Issue 17 (low): pongs were ignored, so a half-open connection (open to the browser, dead underneath) kept the
    page "connected" and deaf. Here the server's pongs are swallowed: after a ping and 10 s of silence the page
    drops that socket and opens a new one. Timers run on Playwright's clock."""
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.clock.install()
    opened: list[int] = []
    forwarded: list[float] = []  # when each server message (not a pong) reached the page, real time

    def relay(ws, m) -> None:
        if isinstance(m, str) and '"pong"' in m:
            return
        forwarded.append(time.monotonic())
        ws.send(m)

    def route(ws) -> None:
        opened.append(1)
        upstream = ws.connect_to_server()
        ws.on_message(lambda m: upstream.send(m))
        upstream.on_message(lambda m: relay(ws, m))

    page.route_web_socket("**/ws*", route)
    page.goto(server + "/")
    page.wait_for_function(CONNECTED, timeout=15000)
    assert len(opened) == 1
    # The page counts any message as an answer to its ping. On a loaded machine the socket's first messages
    # (session_state) could arrive after the clock had already jumped past the ping, and answer it: wait until
    # the server has been quiet for half a second first.
    deadline = time.monotonic() + 10
    while (not forwarded or time.monotonic() - forwarded[-1] < 0.5) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.clock.run_for(31_000)  # the ping goes out; its pong is swallowed
    page.clock.run_for(11_000)  # no answer: the socket is given up, a reconnect is due within 1.5 s
    page.clock.run_for(2_000)
    page.wait_for_function(CONNECTED, timeout=15000)
    deadline = time.monotonic() + 10
    while len(opened) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(opened) == 2, opened
    context.close()
