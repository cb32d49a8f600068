from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.server import create_app
from avatarchat.settings import Settings, bundled_avatar
from avatarchat.tts.espeak import EspeakTTS
from avatarchat.tts.piper import PiperTTS
from avatarchat.tts.router import VoiceRouter
from tests.helpers import ARGS, CHROMIUM, running
from tests.redis_cluster import RedisServer

OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave artifacts a person may want to look at (screenshots, frames)."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    # A still head: the server tests compare the mouth against an unchanged upper face; head motion has its own
    # tests (tests/test_render_motion.py).
    # Every test client is 127.0.0.1: the per-client session quota is lifted here and tested on its own
    # (tests/security/test_fairness.py).
    return Settings(_env_file=None, data_dir=data_dir, port=0, llm_backend="echo", motion_scale=0.0,
                    max_sessions_per_client=200, max_client_backlog=1000,
                    first_chunk_max_wait_s=600.0,  # always the short first chunk and whole sentences after it
                    chunk_growth=0.0)  # (so clip counts are known); the busy rules: tests/test_first_chunk.py


@pytest.fixture(scope="session")
def tts(settings: Settings) -> PiperTTS:
    t = PiperTTS(cache_dir=Path(settings.model_cache_dir))  # its graph as the server runs it (tts/piper_graph.py)
    t.warm_up()
    return t


@pytest.fixture(scope="session")
def voices(tts: PiperTTS) -> VoiceRouter:
    """What the test servers speak with: Piper for English, espeak-ng for Korean (the busy-server setting: the
    default Korean voice, Kokoro's, has its own tests in test_tts_kokoro.py and would slow every Korean test)."""
    return VoiceRouter({"piper": tts, "espeak": EspeakTTS()}, primary="piper",
                       script_defaults={"Latin": "piper:en_US-joe-medium", "Hangul": "espeak:ko"})


@pytest.fixture(scope="session")
def renderer(data_dir: Path) -> MeshWarpRenderer:
    return MeshWarpRenderer(cache_dir=data_dir / "avatars", motion_scale=0.0)  # still head: see ``settings``


@pytest.fixture(scope="session")
def avatar(renderer: MeshWarpRenderer):
    return renderer.register(bundled_avatar())


@pytest.fixture(scope="session")
def server(settings: Settings, voices: VoiceRouter, renderer: MeshWarpRenderer) -> Iterator[str]:
    """The real app (echo LLM, Piper + espeak-ng, meshwarp) under uvicorn on a loopback port."""
    with running(create_app(settings, tts=voices, renderer=renderer)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Debian Chromium driven by Playwright, one per test module (every browser test shares this)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed; scripts/test.sh installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A private ``redis-server`` on a free port, for one test module (Redis mode)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of that server, which each test starts empty."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()
