"""Issue 17 item 6: the session table and the speech backlog are shared fairly between clients. One client
asking for many sessions evicts only its own; it cannot hold more than its quota; its speech backlog makes its
own replies text-only, not everyone else's. Clients are told apart by address: the tests speak from 127.0.0.1
and 127.0.0.2 (both loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from avatarchat.errors import TooManyForClient, TooManySessions
from avatarchat.pipeline.session import Outbox, SessionManager, fair_backlog
from avatarchat.server import create_app
from avatarchat.settings import Settings
from tests.helpers import running


class _Lane:
    waiting = 0
    closed = False

    def speaking(self) -> list:
        return []

    async def aclose(self) -> None:
        self.closed = True


def manager(max_sessions: int, per_client: int) -> SessionManager:
    return SessionManager(max_sessions=max_sessions, queue_size=4, history_turns=4, make_lane=lambda s: _Lane(),
                          per_client=per_client)


async def test_one_client_asking_for_many_sessions_evicts_only_its_own() -> None:
    mgr = manager(max_sessions=20, per_client=10)
    theirs = mgr.create(owner="10.0.0.2")
    theirs.last_seen -= 1000  # idle the longest of all
    for _ in range(250):
        mgr.create(owner="10.0.0.1")
    await asyncio.sleep(0)
    assert theirs.id in mgr.sessions and not theirs.lane.closed
    assert sum(s.owner == "10.0.0.1" for s in mgr.sessions.values()) == 10
    await mgr.close()


async def test_a_client_whose_sessions_are_all_in_use_gets_429_not_someone_elses_slot() -> None:
    mgr = manager(max_sessions=20, per_client=3)
    for _ in range(3):
        mgr.create(owner="a").outboxes.add(Outbox())  # each has a socket open
    with pytest.raises(TooManyForClient):
        mgr.create(owner="a")
    assert mgr.create(owner="b").owner == "b"  # another client is still admitted
    await mgr.close()


async def test_a_full_table_gives_up_an_idle_session_of_the_client_holding_the_most() -> None:
    mgr = manager(max_sessions=6, per_client=6)
    small = mgr.create(owner="small")
    small.last_seen -= 1000  # the idlest session of all belongs to the small holder
    for _ in range(5):
        mgr.create(owner="big")
    newcomer = mgr.create(owner="new")
    await asyncio.sleep(0)
    assert small.id in mgr.sessions and newcomer.id in mgr.sessions
    assert sum(s.owner == "big" for s in mgr.sessions.values()) == 4
    for s in list(mgr.sessions.values()):
        s.outboxes.add(Outbox())
    with pytest.raises(TooManySessions):
        mgr.create(owner="other")
    await mgr.close()


def test_the_backlog_counted_for_a_client_is_what_fair_service_would_put_ahead_of_it() -> None:
    assert fair_backlog({}, "a") == 0
    assert fair_backlog({"hog": 40}, "a") == 1  # a newcomer waits for one of the hog's sentences, not forty
    assert fair_backlog({"hog": 40, "a": 2}, "a") == 2 + 3
    assert fair_backlog({"hog": 40, "b": 1, "a": 0}, "a") == 2
    assert fair_backlog({"hog": 40}, "hog") == 40


# -- through the real server -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fair_server(settings: Settings, voices, renderer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fair = settings.model_copy(update={"max_sessions_per_client": 3, "max_client_backlog": 2, "max_sessions": 8,
                                       "data_dir": tmp_path_factory.mktemp("fair")})
    with running(create_app(fair, tts=voices, renderer=renderer)) as base:
        yield base


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def events_until(ws, wanted: set[str], timeout_s: float = 60) -> list[dict]:
    out: list[dict] = []
    while not wanted & {e["type"] for e in out}:
        out.append(json.loads(ws.recv(timeout=timeout_s)))
    return out


def test_over_http_a_session_hog_cannot_evict_another_client_and_is_capped(fair_server: str) -> None:
    with client_from("127.0.0.2") as other, client_from("127.0.0.1") as hog:
        theirs = other.post(fair_server + "/session").json()["session_id"]
        codes = [hog.post(fair_server + "/session").status_code for _ in range(40)]
        assert set(codes) == {200}  # the hog's idle sessions made room for its own new ones
        r = other.post(fair_server + "/chat", json={"session_id": theirs, "message": "Still here."})
        assert r.status_code == 200 and r.json()["text"] == "Still here."
        ws_url = fair_server.replace("http", "ws") + "/ws?session_id="
        held = [hog.post(fair_server + "/session").json()["session_id"] for _ in range(3)]
        sockets = [connect(ws_url + sid) for sid in held]
        try:
            r = hog.post(fair_server + "/session")
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_sessions_for_client"
            assert other.post(fair_server + "/session").status_code == 200
        finally:
            for ws in sockets:
                ws.close()


def test_over_http_one_clients_speech_backlog_makes_only_its_own_replies_text_only(fair_server: str) -> None:
    long = " ".join(f"This is sentence number {i} of a long answer." for i in range(8))
    ws_url = fair_server.replace("http", "ws") + "/ws?session_id="
    with client_from("127.0.0.3") as hog, client_from("127.0.0.4") as other:
        first, second = (hog.post(fair_server + "/session").json()["session_id"] for _ in range(2))
        mine = other.post(fair_server + "/session").json()["session_id"]
        with connect(ws_url + second) as hog_ws, connect(ws_url + mine) as my_ws:
            assert hog.post(fair_server + "/chat", json={"session_id": first, "message": long}).status_code == 200
            hog.post(fair_server + "/chat", json={"session_id": second, "message": "And me too, please."})
            hog_events = events_until(hog_ws, {"speech_skipped", "clip_ready"})
            assert "speech_skipped" in {e["type"] for e in hog_events}, [e["type"] for e in hog_events]
            other.post(fair_server + "/chat", json={"session_id": mine, "message": "My turn now."})
            my_events = events_until(my_ws, {"speech_skipped", "clip_ready"})
            assert "clip_ready" in {e["type"] for e in my_events}, [e["type"] for e in my_events]


async def test_the_reaper_spares_a_session_that_became_busy_while_it_was_closing_another() -> None:
    """Issue 17 (low): reap() awaited each close in turn over a list made before; a session that got a socket
    meanwhile was closed all the same."""
    mgr = manager(max_sessions=10, per_client=10)
    first, second = mgr.create(owner="a"), mgr.create(owner="b")
    first.last_seen -= 1000
    second.last_seen -= 1000

    class _SlowLane(_Lane):
        async def aclose(self) -> None:
            second.outboxes.add(Outbox())  # the other session's page connects while this one closes
            await asyncio.sleep(0.01)
            self.closed = True

    first.lane = _SlowLane()
    assert await mgr.reap(idle_s=100) == [first.id]
    assert second.id in mgr.sessions and not second.lane.closed
    await mgr.close()
