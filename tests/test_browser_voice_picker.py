"""The page's voice picker, in headless Chromium: voices by tier under human labels, the page's lang following."""

from __future__ import annotations


def test_picker_lists_natural_voices_apart_from_espeak_and_the_page_lang_follows(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 2", timeout=15000)
    groups = page.evaluate("[...document.querySelectorAll('#voice optgroup')].map(g => g.label)")
    assert groups == ["Natural voices", "espeak-ng"]
    joe = page.evaluate("(() => { const o = document.querySelector('#voice option[value=\"piper:en_US-joe-medium\"]');"
                        " return [o.textContent, o.parentElement.label, o.selected]; })()")
    assert joe == ["Joe (English (US), male)", "Natural voices", True]
    korean = page.evaluate("document.querySelector('#voice option[value=\"espeak:ko\"]').parentElement.label")
    assert korean == "espeak-ng"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.select_option("#voice", "espeak:ko")
    assert page.evaluate("document.documentElement.lang") == "ko"
    page.close()


def test_the_picker_tells_the_server_at_once_and_again_when_the_socket_reopens(server: str, browser) -> None:  # noqa: F811
    """A `voice` frame on the socket (docs/protocol.md), so spoken turns use the voice before anything is typed
    (the server's side: tests/test_voice_session_turns.py)."""
    page = browser.new_page(bypass_csp=True)
    sent: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(_json(payload))))
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 2", timeout=15000)
    page.select_option("#voice", "espeak:ko")
    _wait(page, lambda: {"type": "voice", "voice": "espeak:ko"} in sent)
    before = len(sent)
    page.reload()  # a new socket: the picker (kept in sessionStorage) is sent again
    _wait(page, lambda: {"type": "voice", "voice": "espeak:ko"} in sent[before:])
    page.close()


def _json(payload: str | bytes) -> dict:
    import json

    try:
        return json.loads(payload)
    except (TypeError, ValueError):
        return {}  # a binary frame


def _wait(page, check, timeout_s: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the page never sent its voice"
        page.wait_for_timeout(50)
