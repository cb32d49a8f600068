"""Redis mode, two web nodes (real apps on loopback, a real redis-server): a spoken turn starts from the session's
current state, not from the copy the socket's node adopted when the socket opened. A voice chosen through node A
(the page's picker, a ``voice`` frame) applies to the next spoken turn on node B, which hears it in Korean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect

from avatarchat.asr import create_asr
from avatarchat.server import create_app
from avatarchat.settings import Settings
from avatarchat.tts.kokoro import KokoroTTS
from benchmarks.errors import cer
from tests.helpers import new_session, running
from tests.redis_cluster import RedisServer
from tests.test_voice_session_turns import KOREAN, hangul_share, until_final
from tests.test_voice_ws import stream
from tests.test_ws import collect
from tests.voice_audio import silence, speak


@pytest.fixture(scope="module")
def nodes(redis_server: RedisServer, voices, renderer, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """Node A (which also renders: a speech worker) and node B, sharing one Redis and one ASR."""
    def settings(name: str) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path_factory.mktemp(name), port=0, llm_backend="echo",
                        motion_scale=0.0, max_sessions_per_client=200, max_client_backlog=1000,
                        first_chunk_max_wait_s=600.0, redis_url=redis_server.url)

    asr = create_asr(settings("asr"))
    with running(create_app(settings("a"), tts=voices, renderer=renderer, asr=asr, with_worker=True)) as a, \
            running(create_app(settings("b"), tts=voices, renderer=renderer, asr=asr)) as b:
        yield a, b


@pytest.fixture(scope="module")
def korean() -> np.ndarray:
    kokoro = KokoroTTS(cache_dir=Path(Settings(_env_file=None).model_cache_dir))
    return np.concatenate([silence(0.3), speak(kokoro, KOREAN, "jf_alpha+ko"), silence(0.8)])


def socket(base: str, token: str):
    return connect(base.replace("http://", "ws://") + f"/ws?session_id={token}")


def test_a_voice_chosen_through_node_a_applies_to_a_spoken_turn_on_node_b(nodes, korean) -> None:
    a, b = nodes
    token = new_session(a)
    with socket(b, token) as on_b:
        assert json.loads(on_b.recv(timeout=10))["type"] == "session_state"  # node B holds the session now
        with socket(a, token) as on_a:
            assert json.loads(on_a.recv(timeout=10))["type"] == "session_state"
            on_a.send(json.dumps({"type": "voice", "voice": "espeak:ko"}))
            on_a.send(json.dumps({"type": "ping"}))
            events = collect(on_a, "pong", timeout_s=10)  # frames are taken in order: the voice is saved
            assert not [e for e in events if e["type"] == "error"], events
        stream(on_b, korean, speed=1.2)
        final = until_final(on_b)[-1]
        assert hangul_share(final["text"]) > 0.8 and cer(KOREAN, final["text"]) <= 0.5, final
        events = collect(on_b, "clip_ready", timeout_s=60)
    reply = next(e for e in events if e["type"] == "reply_text")
    assert reply["text"] == final["text"]  # the echo LLM says back what node B heard
    assert next(e for e in events if e["type"] == "clip_ready")["voice"] == "espeak:ko"
