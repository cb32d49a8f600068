"""The page switches to an uploaded avatar (headless Chromium, phone-sized): the idle loop and the next clip show
the new face."""

from __future__ import annotations

import httpx
import pytest

from tests import media_files as mf
from tests.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = pytest.mark.browser


def test_the_page_loops_the_uploaded_avatar_and_its_clips_show_it(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.wait_for_function("document.getElementById('idle').currentTime > 0.2", timeout=15000)
    default_w = page.evaluate("document.getElementById('idle').videoWidth")
    session = page.evaluate("window.avatarchat.sessionId")
    r = httpx.post(server + "/avatars", data={"session_id": session},
                   files={"file": ("me.jpg", mf.PHOTO.read_bytes(), "image/jpeg")}, timeout=60)
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["width"] != default_w

    page.evaluate("url => window.avatarchat.setAvatar(url)", mine["idle_url"])
    page.wait_for_function(f"(() => {{ const v = document.getElementById('idle'); return v.videoWidth === "
                           f"{mine['width']} && v.currentTime > 0.2 && !v.paused; }})()", timeout=30000)
    page.fill("#message", "Do I look different?")
    page.click("#send")
    page.wait_for_function(f"[...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           f"&& v.currentTime > 0.2 && v.videoWidth === {mine['width']})", timeout=60000)
    assert page.evaluate("window.avatarchat.stats.errors") == []
    page.close()
