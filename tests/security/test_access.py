"""Attack: a stranger, a foreign page or a rebound DNS name uses the server. With an access key set, only
/healthz, the page, its static files and the favicon are open; the key comes as a bearer token, an
``X-Access-Key`` header, a ``key=`` query parameter on the socket, or the cookie ``POST /access`` sets. Host
names and browser Origins outside ``allowed_hosts`` are refused on requests and sockets alike."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from avatarchat.server import create_app
from tests.helpers import running

KEY = "correct horse battery staple"


def _ws(base: str, token: str, extra: str = "") -> str:
    return base.replace("http://", "ws://") + f"/ws?session_id={token}{extra}"


@pytest.fixture(scope="module")
def keyed(settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    s = settings.model_copy(update={"access_keys": [SecretStr(KEY), SecretStr("second key")], "docs_enabled": True,
                                    "data_dir": tmp_path_factory.mktemp("keyed")})
    with running(create_app(s, tts=voices, renderer=renderer)) as base:
        yield base


def test_without_the_key_only_the_page_and_healthz_open(keyed: str) -> None:
    for path in ("/", "/healthz", "/static/app.js", "/static/style.css", "/favicon.ico"):
        assert httpx.get(keyed + path, timeout=10).status_code == 200, path
    for method, path in (("GET", "/voices"), ("POST", "/session"), ("GET", "/metrics"), ("GET", "/docs"),
                         ("GET", "/avatar/idle.mp4"), ("GET", "/clips/" + "0" * 32 + ".mp4")):
        r = httpx.request(method, keyed + path, timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        assert r.json()["error"]["code"] == "access_key_required"
    r = httpx.post(keyed + "/chat", json={"session_id": "x", "message": "hi"}, timeout=10)
    assert r.status_code == 401


def test_a_wrong_key_is_refused_and_either_key_works(keyed: str) -> None:
    assert httpx.get(keyed + "/voices", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    assert httpx.get(keyed + "/voices", headers={"X-Access-Key": KEY[:-1]}, timeout=10).status_code == 401
    assert httpx.get(keyed + "/voices", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code == 200
    assert httpx.get(keyed + "/voices", headers={"X-Access-Key": "second key"}, timeout=10).status_code == 200
    assert httpx.get(keyed + "/docs", headers={"X-Access-Key": KEY}, timeout=10).status_code == 200


def test_the_socket_needs_the_key_and_works_with_it(keyed: str) -> None:
    token = httpx.post(keyed + "/session", headers={"X-Access-Key": KEY}, timeout=10).json()["session_id"]
    with pytest.raises(InvalidStatus) as refused, connect(_ws(keyed, token)):
        pass
    assert refused.value.response.status_code == 403
    with connect(_ws(keyed, token, "&key=" + KEY.replace(" ", "%20"))) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
    with connect(_ws(keyed, token), additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"


def test_post_access_trades_the_key_for_a_cookie(keyed: str) -> None:
    with httpx.Client(base_url=keyed, timeout=10) as page:
        r = page.post("/access", json={"key": "guess"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_access_key"
        assert page.get("/voices").status_code == 401
        r = page.post("/access", json={"key": KEY})
        assert r.status_code == 204
        cookie = r.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and KEY not in cookie
        assert page.get("/voices").status_code == 200
        token = page.post("/session").json()["session_id"]
        header = "; ".join(f"{k}={v}" for k, v in page.cookies.items())
    with connect(_ws(keyed, token), additional_headers={"Cookie": header}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"


def test_a_foreign_host_header_is_refused(server: str) -> None:
    r = httpx.get(server + "/voices", headers={"Host": "rebound.evil.example"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host"
    assert httpx.get(server + "/voices", headers={"Host": "localhost:1234"}, timeout=10).status_code == 200


def test_a_cross_site_socket_or_post_is_refused(server: str) -> None:
    token = httpx.post(server + "/session", timeout=10).json()["session_id"]
    with pytest.raises(InvalidStatus) as refused:
        with connect(_ws(server, token), origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    port = server.rsplit(":", 1)[1]
    with connect(_ws(server, token), origin=f"http://127.0.0.1:{port}") as ws:  # the page's own origin
        assert json.loads(ws.recv(timeout=10))["type"] == "session_state"
    r = httpx.post(server + "/session", headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "bad_origin"
    r = httpx.post(server + "/session", headers={"Origin": "null"}, timeout=10)
    assert r.status_code == 403


def test_a_rebound_socket_is_refused(settings, voices, renderer, tmp_path) -> None:
    s = settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "data_dir": tmp_path})
    with running(create_app(s, tts=voices, renderer=renderer)) as base:
        token = httpx.post(base + "/session", timeout=10).json()["session_id"]
        with pytest.raises(InvalidStatus):
            with connect(_ws(base.replace("127.0.0.1", "localhost"), token)):
                pass
        assert httpx.get(base.replace("127.0.0.1", "localhost") + "/voices", timeout=10).status_code == 400
        with connect(_ws(base, token)) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session_state"


def test_an_origin_on_another_port_or_scheme_of_our_host_is_refused(server: str) -> None:
    """Another local app (``http://127.0.0.1:8080``) is another site: its page may not post to us or open our
    socket; neither may a non-web scheme. The page's own origin still may."""
    token = httpx.post(server + "/session", timeout=10).json()["session_id"]
    port = int(server.rsplit(":", 1)[1])
    for origin in (f"http://127.0.0.1:{port + 1}", f"ftp://127.0.0.1:{port}", "http://127.0.0.1"):
        r = httpx.post(server + "/session", headers={"Origin": origin}, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_origin", origin
        with pytest.raises(InvalidStatus):
            with connect(_ws(server, token), origin=origin):
                pass
    r = httpx.post(server + "/session", headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=10)
    assert r.status_code == 200
    # Behind a proxy that passes Host without its port, the host name is all there is to compare.
    r = httpx.post(server + "/session", headers={"Origin": "https://127.0.0.1:8443", "Host": "127.0.0.1"},
                   timeout=10)
    assert r.status_code == 200
