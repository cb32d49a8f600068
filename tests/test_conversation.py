"""The conversation never freezes: failed sentences, reconnects, and barge-in after a reply is rendered.

The first tests drive the real server over its socket, playing the page's part (playback reports); the last
ones drive the real page in headless Chromium.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from avatarchat.data import Message
from avatarchat.llm.base import LLM
from avatarchat.server import create_app
from avatarchat.tts.router import VoiceRouter
from tests.fakes import FailOn
from tests.helpers import running, session_for
from tests.test_ws import collect, open_ws, ws_url

SIX = ("The first one is here. The second one follows. Then comes a third. A fourth is next. "
       "The fifth is almost last. And the sixth ends it.")


class RecordingEcho(LLM):
    """Echoes the user's last message, and keeps the history it was given (to check what was remembered)."""

    name = "recording-echo"

    def __init__(self) -> None:
        self.seen: list[list[Message]] = []

    async def stream(self, history: list[Message]) -> AsyncIterator[str]:
        self.seen.append(list(history))
        yield history[-1].content


@pytest.fixture(scope="module")
def recording(settings, voices, renderer, tmp_path_factory) -> Iterator[tuple[str, RecordingEcho]]:
    llm = RecordingEcho()
    app = create_app(settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("conv")}), llm=llm,
                     tts=voices, renderer=renderer)
    with running(app) as base:
        yield base, llm


@pytest.fixture(scope="module")
def breaking(settings, voices, renderer, tmp_path_factory) -> Iterator[str]:
    """A server whose Piper fails every sentence that says "Explode"."""
    tts = VoiceRouter({"piper": FailOn(voices.backends["piper"]), "espeak": voices.backends["espeak"]},
                      primary="piper", script_defaults=voices.script_defaults)
    app = create_app(settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("breaking")}), tts=tts,
                     renderer=renderer)
    with running(app) as base:
        yield base


def chat(base: str, name: str, message: str, **extra) -> dict:
    r = httpx.post(base + "/chat", json={"session_id": session_for(base, name), "message": message, **extra},
                   timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def played(ws, reply: str, seq: int) -> None:
    """Play the page's part: clip ``seq`` of ``reply`` started and finished."""
    ws.send(json.dumps({"type": "clip_started", "reply": reply, "seq": seq}))
    ws.send(json.dumps({"type": "clip_ended", "reply": reply, "seq": seq}))


def test_a_failed_sentence_is_reported_with_its_reply_and_seq(breaking: str) -> None:
    with open_ws(breaking, "conv-fail") as ws:
        body = chat(breaking, "conv-fail", "First sentence here. Explode now. Third sentence here.")
        events = collect(ws, "speech_done")
    assert body["sentences"] == 3
    errors = [e for e in events if e["type"] == "error"]
    assert [(e["reply"], e["seq"]) for e in errors] == [(body["reply_id"], 1)]
    assert [e["seq"] for e in events if e["type"] == "clip_ready"] == [0, 2]
    assert events[-1]["sentences"] == 3 and events[-1]["clips"] == 2


def test_barge_in_after_rendering_still_cancels_and_history_keeps_only_what_was_heard(recording) -> None:
    base, llm = recording
    with open_ws(base, "conv-heard") as ws:
        first = chat(base, "conv-heard", SIX)
        events = collect(ws, "speech_done", timeout_s=90)  # every clip is rendered: the old code called it done
        assert sum(e["type"] == "clip_ready" for e in events) == 6
        played(ws, first["reply_id"], 0)
        ws.send(json.dumps({"type": "clip_started", "reply": first["reply_id"], "seq": 1}))
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"  # the reports were read before the next chat
        second = chat(base, "conv-heard", "Wait, stop.")
        later = collect(ws, "speech_done", timeout_s=60)
    assert ("speech_cancelled", first["reply_id"]) in [(e["type"], e.get("reply")) for e in later]
    history = llm.seen[-1]
    assert [m.role for m in history] == ["user", "assistant", "user"]
    assert history[1].content == "The first one is here. The second one follows."  # heard: seq 0 and 1
    assert history[2].content == "Wait, stop."
    assert second["text"] == "Wait, stop."


def test_an_interruption_cancels_queued_replies_too(server: str) -> None:
    with open_ws(server, "conv-queue") as ws:
        a = chat(server, "conv-queue", "Reply A has two sentences. Here is the second.")
        b = chat(server, "conv-queue", "Reply B waits behind it.", queue=True)
        chat(server, "conv-queue", "Interrupting both.")
        seen: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(e["type"] == "speech_cancelled" for e in seen) < 2:
            seen.append(json.loads(ws.recv(timeout=60)))
    cancelled = {e["reply"] for e in seen if e["type"] == "speech_cancelled"}
    assert cancelled == {a["reply_id"], b["reply_id"]}


def test_a_reconnecting_page_gets_the_state_of_the_reply_still_speaking(server: str) -> None:
    with open_ws(server, "conv-state") as ws:
        body = chat(server, "conv-state", "One sentence. And another one.")
        collect(ws, "speech_done")
        played(ws, body["reply_id"], 0)
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"
    with connect(ws_url(server, "conv-state")) as ws:  # a reload: a new socket, same session
        state = json.loads(ws.recv(timeout=5))
    assert state["type"] == "session_state"
    [reply] = state["replies"]
    assert reply["reply"] == body["reply_id"] and reply["played"] == [0] and reply["done"] is True
    assert [c["seq"] for c in reply["clips"]] == [0, 1] and reply["sentences"] == 2


def test_malformed_playback_reports_are_refused_and_the_socket_lives(server: str) -> None:
    with open_ws(server, "conv-bad") as ws:
        for frame in ({"type": "clip_started", "reply": 3, "seq": 0}, {"type": "clip_ended", "reply": "x"},
                      {"type": "clip_started", "reply": "x", "seq": True}):
            ws.send(json.dumps(frame))
            assert json.loads(ws.recv(timeout=5))["code"] == "bad_frame"
        ws.send(json.dumps({"type": "clip_started", "reply": "unknown", "seq": 4}))  # ignored: not this session's
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"


# -- in the browser ---------------------------------------------------------------------------------------------------
def _page(server: str, browser):  # noqa: F811
    page = browser.new_page(bypass_csp=True, viewport={"width": 1000, "height": 640})
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    return page


def _send(page, text: str) -> None:
    page.fill("#message", text)
    page.click("#send")


def _played(page) -> list[tuple[str, int]]:
    return [tuple(x) for x in page.evaluate("window.avatarchat.stats.clipsPlayed.map(c => [c.reply, c.seq])")]


@pytest.mark.browser
@pytest.mark.slow
def test_page_plays_on_after_a_failed_middle_sentence(breaking: str, browser) -> None:  # noqa: F811
    page = _page(breaking, browser)
    _send(page, "First sentence here. Explode now. Third sentence here.")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 2", timeout=60000)
    first = _played(page)
    assert [seq for _, seq in first] == [0, 2]
    _send(page, "A second message plays too.")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 3", timeout=60000)
    assert _played(page)[2][0] != first[0][0]
    page.close()


@pytest.mark.browser
def test_page_reloaded_mid_reply_plays_the_next_message(server: str, browser) -> None:  # noqa: F811
    page = _page(server, browser)
    _send(page, SIX)
    page.wait_for_function("[...document.querySelectorAll('video.clip')].some(v => !v.paused && v.currentTime > 0.2)",
                           timeout=60000)
    page.reload()
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    _send(page, "After the reload.")
    # The new page's first reply_text (its log may already show the old reply, restored from session_state).
    page.wait_for_function("window.avatarchat.stats.events.some(e => e.type === 'reply_text')", timeout=30000)
    new_reply = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'reply_text').reply")
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply === '{new_reply}')",
                           timeout=60000)
    page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_interrupting_three_seconds_in_fades_the_old_clip_within_300_ms(server: str, browser) -> None:  # noqa: F811
    page = _page(server, browser)
    _send(page, SIX)
    page.wait_for_function("window.avatarchat.stats.events.filter(e => e.type === 'clip_ready').length >= 6",
                           timeout=90000)  # fully rendered: the case the server used to call finished
    page.wait_for_function("[...document.querySelectorAll('video.clip')].some(v => !v.paused)", timeout=30000)
    page.wait_for_timeout(3000)
    old = page.evaluate("window.avatarchat.stats.events.find(e => e.type === 'clip_ready').reply")
    t0 = page.evaluate("performance.now()")
    _send(page, "Sorry, one more thing.")
    page.wait_for_function("![...document.querySelectorAll('video.clip')].some(v => v.classList.contains('shown') "
                           f"&& v.dataset.reply === '{old}')", timeout=2000)
    faded_ms = page.evaluate("performance.now()") - t0
    assert faded_ms < 300 + 250, faded_ms  # the fade starts at once and lasts 300 ms (plus the test's round trips)
    page.wait_for_function(f"window.avatarchat.stats.events.some(e => e.type === 'speech_cancelled' "
                           f"&& e.reply === '{old}')", timeout=15000)
    page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.some(c => c.reply !== '{old}')", timeout=60000)
    ended_before = page.evaluate(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{old}').length")
    page.wait_for_timeout(1500)
    assert page.evaluate(f"window.avatarchat.stats.clipsPlayed.filter(c => c.reply === '{old}').length") == ended_before
    page.close()


def test_closed_sockets_leave_no_task_behind(server: str) -> None:
    def tasks() -> int:
        return httpx.get(server + "/healthz").json()["tasks"]

    with open_ws(server, "conv-tasks"):
        pass
    before = tasks()
    for _ in range(20):
        with open_ws(server, "conv-tasks") as ws:
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "pong"
    deadline = time.monotonic() + 5
    while tasks() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tasks() <= before


@pytest.mark.browser
def test_refused_autoplay_shows_tap_to_hear_and_playback_continues_after_a_tap(server: str,
                                                                               browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True)
    # The autoplay policy of a real visit (sound only after a user gesture), which the test browser's flags
    # lift (and Playwright's evaluate counts as activation): play() of an unmuted video is refused with
    # NotAllowedError until a real click on the page.
    page.add_init_script("""(() => {
        let clicked = false;
        document.addEventListener('click', () => { clicked = true; }, true);
        const play = HTMLMediaElement.prototype.play;
        HTMLMediaElement.prototype.play = function () {
            if (!this.muted && !clicked) {
                return Promise.reject(new DOMException('play() needs a user gesture', 'NotAllowedError'));
            }
            return play.call(this);
        };
    })()""")
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
    page.evaluate("""async (msg) => {  // posting without a click on the page: no user activation
        await fetch('/chat', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({session_id: window.avatarchat.sessionId, message: msg})});
    }""", "This clip may not play by itself.")
    page.wait_for_selector("#unlock:not([hidden])", timeout=30000)
    assert "NotAllowedError" in " ".join(page.evaluate("window.avatarchat.stats.errors"))
    page.click("#unlock")
    page.wait_for_function("window.avatarchat.stats.clipsPlayed.length >= 1", timeout=30000)
    assert page.is_hidden("#unlock")
    page.close()
