"""The page under its own Content-Security-Policy (no ``bypass_csp``): it loads, connects and chats with no
console error (no CSP violation, no missing favicon); with an access key set it asks for the key once, then
works, and a wrong key is told so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from avatarchat.server import create_app
from tests.helpers import running

pytestmark = pytest.mark.browser
KEY = "page-key-123"


def _errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def _chat(page, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")
    page.wait_for_selector(f".log li.avatar:has-text('{message}')", timeout=30000)


@pytest.fixture(scope="module")
def keyed(settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    s = settings.model_copy(update={"access_keys": [SecretStr(KEY)], "data_dir": tmp_path_factory.mktemp("page")})
    with running(create_app(s, tts=voices, renderer=renderer)) as base:
        yield base


def test_the_page_works_under_its_csp_without_console_errors(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page()
    errors = _errors(page)
    page.goto(server + "/")
    page.wait_for_selector("#status:text-is('connected')", timeout=15000)
    _chat(page, "Hello under a strict policy.")
    page.wait_for_timeout(500)
    page.close()
    assert not errors, errors


def test_the_page_asks_for_the_key_once_then_works(keyed: str, browser) -> None:  # noqa: F811
    page = browser.new_page()
    page.goto(keyed + "/")
    page.wait_for_selector("#keyform", state="visible", timeout=15000)
    page.fill("#key", "wrong")
    page.click("#keyform button")
    page.wait_for_selector("#keyerror:has-text('not valid')", timeout=10000)
    page.fill("#key", KEY)
    page.click("#keyform button")
    page.wait_for_selector("#keyform", state="hidden", timeout=10000)
    page.wait_for_selector("#status:text-is('connected')", timeout=30000)
    assert page.locator("#voice option").count() > 0  # /voices answered once the key was given
    _chat(page, "Hello with a key.")
    page.reload()  # the cookie holds: no second prompt
    page.wait_for_selector("#status:text-is('connected')", timeout=30000)
    assert page.locator("#keyform").is_hidden()
    page.close()
