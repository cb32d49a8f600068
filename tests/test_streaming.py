"""A streaming OpenAI-compatible LLM through the whole server: words show and sentences are voiced before the
LLM has finished writing."""

from __future__ import annotations

import json
import threading
import time

import httpx

from avatarchat.llm.openai import OpenAILLM
from avatarchat.server import create_app
from tests.helpers import running, session_for
from tests.test_llm_openai import API_KEY, SLOW_MODEL, SLOW_PAUSE_S, FakeServer, fake_server  # noqa: F401
from tests.test_ws import open_ws


def test_partial_text_and_first_clip_come_before_the_stream_ends(fake_server: FakeServer, settings, voices,  # noqa: F811
                                                                 renderer, tmp_path) -> None:
    llm = OpenAILLM(base_url=fake_server.base_url, api_key=API_KEY, model=SLOW_MODEL, system_prompt="Be brief.")
    app = create_app(settings.model_copy(update={"data_dir": tmp_path}), llm=llm, tts=voices, renderer=renderer)
    with running(app) as base, open_ws(base, "stream") as ws:
        answer: dict = {}
        post = threading.Thread(target=lambda: answer.update(
            httpx.post(base + "/chat", json={"session_id": session_for(base, "stream"), "message": "hello there"},
                       timeout=60).json()))
        t0 = time.monotonic()
        post.start()
        events: list[tuple[float, dict]] = []
        while not any(e["type"] == "speech_done" for _, e in events):
            event = json.loads(ws.recv(timeout=60))  # receive first, then read the clock: its arrival time
            events.append((time.monotonic() - t0, event))
        post.join()
    kinds = [e["type"] for _, e in events]
    assert answer["text"] == "You said: hello there. Model slow-model. System prompt: yes."
    partials = [(t, e) for t, e in events if e["type"] == "reply_partial"]
    final_t = next(t for t, e in events if e["type"] == "reply_text")
    assert [e["text"] for _, e in partials] == ["You said: hello there.", "You said: hello there. Model slow-model."]
    # The server paused SLOW_PAUSE_S before finishing: the first sentence was on screen before that.
    assert partials[0][0] < final_t - SLOW_PAUSE_S / 2, (partials[0][0], final_t)
    assert kinds.index("reply_partial") < kinds.index("reply_text")
    clips = [e for _, e in events if e["type"] == "clip_ready"]
    assert [c["text"] for c in clips] == ["You said: hello there.", "Model slow-model.", "System prompt: yes."]
