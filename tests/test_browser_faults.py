"""The page under network faults, in a real headless Chromium against the real server (issue 17): a network drop
mid-reply, a clip the server no longer has, and a message sent before the access key is entered. In each, the
avatar must go on speaking: only a clip that cannot be had may be lost, and the user is told."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from avatarchat.server import create_app
from avatarchat.settings import Settings
from tests.helpers import running

pytestmark = pytest.mark.browser
FOUR = "One sentence comes first here. Then the second one follows. A third sentence is next. And the last one ends it."
CONNECTED = "document.getElementById('status').textContent === 'connected'"


def open_page(browser, server: str, **options):  # noqa: F811 - the fixture, passed on
    context = browser.new_context(bypass_csp=True, **options)
    page = context.new_page()
    page.goto(server + "/")
    page.wait_for_function(CONNECTED, timeout=15000)
    return context, page


def played(page, reply: str | None = None) -> list[int]:
    return page.evaluate("(r) => window.avatarchat.stats.clipsPlayed.filter(c => !r || c.reply === r).map(c => c.seq)",
                         reply)


def first_reply(page) -> str:
    page.wait_for_function("window.avatarchat.stats.events.some(e => e.type === 'clip_ready')", timeout=30000)
    return page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'clip_ready').reply")


def say(page, text: str) -> None:
    page.fill("#message", text)
    page.click("#send")


@pytest.mark.slow
def test_a_network_drop_mid_clip_loses_nothing_and_later_replies_play(server: str, browser) -> None:  # noqa: F811
    """Offline for 4 s, 1 s into the first clip (downloads and the socket fail): when the network is back every
    sentence of the reply is spoken, in order, and the next reply too."""
    context, page = open_page(browser, server)
    say(page, FOUR)
    reply = first_reply(page)
    page.wait_for_function("[...document.querySelectorAll('video.clip')].some(v => !v.paused && v.currentTime > 1)",
                           timeout=30000)
    context.set_offline(True)
    time.sleep(4)
    context.set_offline(False)
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= 4",
                           timeout=60000)
    assert played(page, reply) == [0, 1, 2, 3]
    assert page.evaluate("window.avatarchat.stats.lost") == []
    page.wait_for_function(CONNECTED, timeout=30000)
    say(page, "Are you still there?")
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{reply}')", timeout=60000)
    context.close()


@pytest.mark.slow
def test_a_clip_the_server_no_longer_has_is_skipped_and_said(server: str, browser) -> None:  # noqa: F811
    """Seq 1's download answers 404 (its TTL passed, say): it is skipped with a line that says so; seq 2 and 3
    play, and so does a later reply."""
    context, page = open_page(browser, server)
    urls: list[str] = []

    def clips(route) -> None:
        path = route.request.url.split("?")[0]
        if path not in urls:
            urls.append(path)
        if len(urls) >= 2 and path == urls[1]:
            route.fulfill(status=404, content_type="application/json", body='{"error": {"code": "not_found"}}')
        else:
            route.continue_()

    page.route("**/clips/*.mp4", clips)
    say(page, FOUR)
    reply = first_reply(page)
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{reply}').length >= 3",
                           timeout=60000)
    assert played(page, reply) == [0, 2, 3]
    assert page.evaluate("window.avatarchat.stats.lost.map(l => l.seq)") == [1]
    errors = page.locator(".log li.error").all_inner_texts()
    assert any("could not be played" in e and "skipped" in e for e in errors), errors
    page.unroute("**/clips/*.mp4")
    say(page, "And now?")
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{reply}')", timeout=60000)
    context.close()


@pytest.fixture(scope="module")
def keyed_server(settings: Settings, voices, renderer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keyed = settings.model_copy(update={"access_keys": [SecretStr("open-sesame-123456")],
                                        "data_dir": tmp_path_factory.mktemp("keyed")})
    with running(create_app(keyed, tts=voices, renderer=renderer)) as base:
        yield base


def test_a_message_sent_before_the_access_key_is_spoken_on_one_session(keyed_server: str, browser,  # noqa: F811
                                                                      output_dir: Path) -> None:
    """The page asks for the key; the person types a message first, then enters the key: the socket and the chat
    share one session, so the reply is spoken."""
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    sessions: list[str] = []
    page.on("response", lambda r: sessions.append(r.url) if r.url.endswith("/session") and r.ok else None)
    page.goto(keyed_server + "/")
    page.wait_for_selector("#keyform:not([hidden])", timeout=15000)
    page.fill("#message", "Hello before the key.")
    page.click("#send")
    page.fill("#key", "open-sesame-123456")
    page.click("#keyform button")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 1", timeout=60000)
    assert len(sessions) == 1, sessions
    context.close()
