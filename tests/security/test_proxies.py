"""Issue 17 item 5: behind a proxy every client is itself, and nobody else can pick an address.

X-Forwarded-For and X-Forwarded-Proto are believed only from ``trusted_proxies``, read from the right. Checked on
a node directly (spoofing from an untrusted peer is ignored; a trusted proxy's clients are told apart) and with the
shipped ``docs/nginx.conf`` run by Debian's nginx in front of two real nodes, clients speaking from different
loopback addresses."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from websockets.sync.client import connect

from avatarchat.server import create_app
from avatarchat.server.clients import ClientResolver
from avatarchat.server.serving import uvicorn_options
from avatarchat.settings import Settings
from tests.helpers import free_port, running, wait_healthy

ROOT = Path(__file__).resolve().parent.parent.parent


def scope(peer: str, xff: str | None = None, proto: str | None = None, kind: str = "http") -> dict:
    headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {"type": kind, "client": (peer, 5555), "headers": headers, "scheme": "http" if kind == "http" else "ws"}


def test_forwarded_headers_count_only_from_trusted_proxies_read_from_the_right() -> None:
    r = ClientResolver(["127.0.0.1", "10.1.0.0/16"])
    assert r.resolve(scope("203.0.113.7", "1.2.3.4"))["client"][0] == "203.0.113.7"  # an untrusted peer: ignored
    assert r.resolve(scope("127.0.0.1", "198.51.100.2"))["client"][0] == "198.51.100.2"
    # The client's own claim (left) is ignored: the first untrusted hop from the right is the client.
    assert r.resolve(scope("127.0.0.1", "1.2.3.4, 198.51.100.2"))["client"][0] == "198.51.100.2"
    assert r.resolve(scope("127.0.0.1", "198.51.100.2, 10.1.4.4"))["client"][0] == "198.51.100.2"  # two proxies
    assert r.resolve(scope("127.0.0.1", "not-an-ip"))["client"][0] == "127.0.0.1"
    assert r.resolve(scope("127.0.0.1", proto="https"))["scheme"] == "https"
    assert r.resolve(scope("127.0.0.1", proto="https", kind="websocket"))["scheme"] == "wss"
    assert r.resolve(scope("203.0.113.7", proto="https"))["scheme"] == "http"
    assert ClientResolver([]).resolve(scope("127.0.0.1", "1.2.3.4"))["client"][0] == "127.0.0.1"


def test_a_malformed_trusted_proxy_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8,bogus")


def _node(settings: Settings, voices, renderer, tmp: Path, **update) -> Settings:
    return settings.model_copy(update={"data_dir": tmp, "rate_per_client": 4, **update})


@pytest.fixture(scope="module")
def untrusting(settings: Settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    s = _node(settings, voices, renderer, tmp_path_factory.mktemp("direct"))
    with running(create_app(s, tts=voices, renderer=renderer), **uvicorn_options(s)) as base:
        yield base


@pytest.fixture(scope="module")
def trusting(settings: Settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    s = _node(settings, voices, renderer, tmp_path_factory.mktemp("proxied"), trusted_proxies=["127.0.0.1"],
              access_keys=[SecretStr("k" * 20)])
    with running(create_app(s, tts=voices, renderer=renderer), **uvicorn_options(s)) as base:
        yield base


def test_a_client_cannot_spoof_its_way_around_the_per_address_limit(untrusting: str) -> None:
    codes = [httpx.get(untrusting + "/voices", headers={"X-Forwarded-For": f"10.9.0.{i}"}).status_code
             for i in range(8)]
    assert codes[:4] == [200] * 4 and 429 in codes[4:], codes


def test_behind_a_trusted_proxy_two_clients_are_two_clients_and_tls_gives_secure_cookies(trusting: str) -> None:
    key = {"X-Access-Key": "k" * 20}
    a = [httpx.get(trusting + "/voices", headers={**key, "X-Forwarded-For": "198.51.100.1"}).status_code
         for _ in range(6)]
    b = httpx.get(trusting + "/voices", headers={**key, "X-Forwarded-For": "198.51.100.2"}).status_code
    assert 429 in a and b == 200, (a, b)
    tls = httpx.post(trusting + "/access", json={"key": "k" * 20},
                     headers={"X-Forwarded-For": "198.51.100.3", "X-Forwarded-Proto": "https"})
    plain = httpx.post(trusting + "/access", json={"key": "k" * 20}, headers={"X-Forwarded-For": "198.51.100.4"})
    assert tls.status_code == plain.status_code == 204
    assert "secure" in tls.headers["set-cookie"].lower() and "secure" not in plain.headers["set-cookie"].lower()


# -- the shipped nginx config in front of two nodes ---------------------------------------------------------------
def _nginx_conf(listen: int, upstreams: list[int], prefix: Path) -> str:
    shipped = (ROOT / "docs" / "nginx.conf").read_text()
    assert "server web:7135;" in shipped and "listen 80;" in shipped
    site = shipped.replace("server web:7135;", " ".join(f"server 127.0.0.1:{p};" for p in upstreams))
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    return (f"worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log warn;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{ access_log off; client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
            f"{site}\n}}\n")


@pytest.fixture(scope="module")
def behind_nginx(settings: Settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed; scripts/test.sh installs Debian's nginx-light")
    prefix = tmp_path_factory.mktemp("nginx")
    prefix.chmod(0o755)
    s1, s2 = (_node(settings, voices, renderer, tmp_path_factory.mktemp(f"node{i}"), trusted_proxies=["127.0.0.1"])
              for i in (1, 2))
    with running(create_app(s1, tts=voices, renderer=renderer), **uvicorn_options(s1)) as n1, \
            running(create_app(s2, tts=voices, renderer=renderer), **uvicorn_options(s2)) as n2:
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(_nginx_conf(port, [int(n1.rsplit(":", 1)[1]), int(n2.rsplit(":", 1)[1])], prefix))
        proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off; user root;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, 10, lambda: proc.poll() is None, "nginx")
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_through_the_shipped_nginx_config_each_client_has_its_own_limits(behind_nginx: str) -> None:
    with _from("127.0.0.2") as a, _from("127.0.0.3") as b:
        # Round-robin over two nodes of 4 requests a minute per client each: a's 12th request is refused, even
        # though it claims to be someone else.
        codes = [a.get(behind_nginx + "/voices", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                 for i in range(12)]
        assert 429 in codes, codes
        assert b.get(behind_nginx + "/voices").status_code == 200  # b is not a


def test_through_the_shipped_nginx_config_the_socket_upgrades(behind_nginx: str) -> None:
    """The upgrade passes through the shipped config. (The two test nodes share no Redis, so the socket may land
    on the node that does not know the session: its answer is then the error event, over the socket all the
    same.)"""
    with _from("127.0.0.4") as c:
        sid = c.post(behind_nginx + "/session").json()["session_id"]
    with connect(behind_nginx.replace("http://", "ws://") + f"/ws?session_id={sid}") as ws:
        first = json.loads(ws.recv(timeout=10))
    assert first["type"] == "session_state" or first.get("code") == "unknown_session", first
