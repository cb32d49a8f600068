"""SIGTERM while a reply is being written and spoken (issue 17, low): `avatarchat serve` as a real process, its
LLM a local OpenAI-compatible server that writes one sentence every 0.4 s. Before, the server went on rendering
clips until uvicorn's graceful timeout and the /chat in flight failed with a 500; now it stops speaking at once,
the /chat gets its text (200), and the process ends within seconds, its render worker processes with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from websockets.sync.client import connect

from tests.helpers import children, free_port, running_pid, wait_healthy

SENTENCES = 40


def _slow_llm() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            for i in range(SENTENCES):
                delta = {"content": f"This is sentence number {i} of a long answer. "}
                yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n"
                await asyncio.sleep(0.4)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_slow_llm(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
def test_sigterm_stops_speaking_at_once_and_the_chat_in_flight_gets_its_text(llm_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AVATARCHAT_LLM_BACKEND": "openai", "AVATARCHAT_OPENAI_BASE_URL": llm_url,
           "AVATARCHAT_DATA_DIR": str(tmp_path), "AVATARCHAT_VOICE_ENABLED": "false",
           "AVATARCHAT_MODEL_CACHE_DIR": str(tmp_path / "models")}
    proc = subprocess.Popen([sys.executable, "-m", "avatarchat", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, 120, lambda: proc.poll() is None)
        sid = httpx.post(base + "/session").json()["session_id"]
        result: dict = {}

        def chat() -> None:
            r = httpx.post(base + "/chat", json={"session_id": sid, "message": "Tell me everything."}, timeout=60)
            result.update(status=r.status_code, body=r.json())

        with connect(base.replace("http", "ws") + f"/ws?session_id={sid}") as ws:
            talker = threading.Thread(target=chat)
            talker.start()
            while True:  # the avatar has started speaking
                if json.loads(ws.recv(timeout=60))["type"] == "clip_ready":
                    break
            workers = children(proc.pid)  # the render processes (render_processes, on by default)
            assert len(workers) >= 2, workers
            sent_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            talker.join(timeout=30)
            clips_after, cancelled = 0, False
            try:
                while time.monotonic() - sent_at < 15:
                    ev = json.loads(ws.recv(timeout=15))
                    clips_after += ev["type"] == "clip_ready"
                    cancelled |= ev["type"] == "speech_cancelled"
            except Exception:  # noqa: BLE001 - the socket closes as the server goes
                pass
        assert result.get("status") == 200, result  # the message in flight got its answer, not a 500
        assert "sentence number 0" in result["body"]["text"]
        assert cancelled and clips_after <= 1, (cancelled, clips_after)  # at most the clip already being encoded
        assert proc.wait(timeout=20) is not None
        assert time.monotonic() - sent_at < 12, "the process took too long to stop"
        time.sleep(0.5)
        assert not [pid for pid in workers if running_pid(pid)], "render processes outlived the server"
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=10)[0]
        if proc.returncode not in (0, -signal.SIGTERM):
            print(out[-3000:])
