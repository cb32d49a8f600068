"""Overload degrades instead of queueing forever, and /healthz tells the truth about a stalled renderer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np

from avatarchat.render.base import Renderer
from avatarchat.server import create_app
from tests.helpers import running, session_for
from tests.test_ws import collect, open_ws

SIX = "One two three. Four five six. Seven eight. Nine ten. Eleven twelve. Thirteen fourteen."


def test_a_reply_that_would_wait_too_long_comes_as_text_with_speech_skipped(settings, voices, renderer,
                                                                          tmp_path) -> None:
    busy = settings.model_copy(update={"data_dir": tmp_path, "max_speech_wait_s": 0.001})
    with running(create_app(busy, tts=voices, renderer=renderer)) as base:
        with open_ws(base, "first") as a, open_ws(base, "second") as b:
            r = httpx.post(base + "/chat", json={"session_id": session_for(base, "first"), "message": SIX},
                           timeout=60)
            assert r.status_code == 200 and r.json()["sentences"] == 6  # nothing waited: it speaks
            r = httpx.post(base + "/chat", json={"session_id": session_for(base, "second"),
                                                 "message": "Hello there."}, timeout=60)
            assert r.status_code == 200 and r.json()["text"] == "Hello there."  # the text is never lost
            events = collect(b, "speech_done")
            collect(a, "speech_done", timeout_s=90)
    kinds = [e["type"] for e in events]
    assert "speech_skipped" in kinds and "clip_ready" not in kinds, kinds
    assert "too busy" in next(e for e in events if e["type"] == "speech_skipped")["message"]
    assert events[-1]["sentences"] == 0


class GatedRenderer(Renderer):
    """The real renderer, except that every clip stops after its first frame until ``gate`` opens: a renderer
    that blocks, as a wedged native library would."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.fps = inner.name, inner.fps
        self.gate = threading.Event()

    def register(self, media):
        return self.inner.register(media)

    def idle_frames(self, avatar) -> Iterator[np.ndarray]:
        return self.inner.idle_frames(avatar)

    def render(self, avatar, speech, cancel=None, voice=None) -> Iterator[np.ndarray]:
        for k, frame in enumerate(self.inner.render(avatar, speech, cancel, voice=voice)):
            if k == 1:
                self.gate.wait(60)
            yield frame


def _health(base: str) -> httpx.Response:
    return httpx.get(base + "/healthz", timeout=10)


def test_healthz_is_503_while_rendering_is_stalled_and_ok_again_after(settings, voices, renderer, tmp_path) -> None:
    gated = GatedRenderer(renderer)
    strict = settings.model_copy(update={"data_dir": tmp_path, "render_stall_s": 0.5})
    with running(create_app(strict, tts=voices, renderer=gated)) as base:
        assert _health(base).status_code == 200
        with open_ws(base, "stall") as ws:
            httpx.post(base + "/chat", json={"session_id": session_for(base, "stall"), "message": "Stuck."},
                       timeout=60)
            deadline = time.monotonic() + 30
            while _health(base).status_code != 503:
                assert time.monotonic() < deadline, _health(base).json()
                time.sleep(0.2)
            body = _health(base).json()
            assert body["status"] == "stalled" and body["pipeline"]["renders_in_flight"] == 1
            gated.gate.set()
            collect(ws, "speech_done")
        assert _health(base).status_code == 200
