"""Attack: the page is framed, sniffed or fed script from elsewhere. Every response carries a CSP without inline
script, nosniff, no referrer and no framing; the page has no inline script or style to need more; it has a
favicon; and every error, even one Starlette raises itself, is the documented envelope."""

from __future__ import annotations

import re

import httpx

from avatarchat.server.limits import json_depth
from avatarchat.server.routes import WEB_DIR
from avatarchat.settings import Settings


def _assert_secure(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


def test_security_headers_on_the_page_api_errors_and_static_files(server: str) -> None:
    for path in ("/", "/voices", "/static/app.js", "/no-such-route"):
        _assert_secure(httpx.get(server + path, timeout=10))
    _assert_secure(httpx.post(server + "/chat", json={}, timeout=10))


def test_the_page_has_no_inline_script_or_style() -> None:
    html = (WEB_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html)


def test_favicon_is_served(server: str) -> None:
    r = httpx.get(server + "/favicon.ico", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.content.lstrip().startswith(b"<svg")
    assert 'rel="icon"' in (WEB_DIR / "index.html").read_text()


def test_unknown_routes_and_methods_get_the_envelope(server: str) -> None:
    r = httpx.get(server + "/nope", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.put(server + "/chat", json={}, timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_docs_are_off_by_default(server: str) -> None:
    assert Settings(_env_file=None).docs_enabled is False
    assert httpx.get(server + "/docs", timeout=10).status_code == 404
    assert httpx.get(server + "/openapi.json", timeout=10).status_code == 404


def test_json_depth_counts_nesting_outside_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth("[" * 5000) == 5000
    assert json_depth('"just a string"') == 0
