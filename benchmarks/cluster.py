"""Start an avatarchat deployment on this machine for a benchmark: one ``serve`` process alone (embedded),
or a private ``redis-server``, one web node and N ``avatarchat worker`` processes (Redis mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import free_port  # noqa: E402


class Cluster:
    def __init__(self, workers: int = 0, extra_env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.extra_env = extra_env or {}
        self.procs: list[subprocess.Popen] = []
        self.base = ""
        self.redis_url = ""

    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory()
        env = dict(os.environ, AVATARCHAT_DATA_DIR=self._tmp.name, AVATARCHAT_LLM_BACKEND="echo",
                   AVATARCHAT_MAX_SPEECH_WAIT_S="600",  # measure the speech, never skip it
                   AVATARCHAT_RATE_PER_CLIENT="0",
                   # every simulated person is 127.0.0.1: the per-address caps (10 sessions, 12 sentences waiting)
                   # would end the first rounds' sessions and make the last of 8 sessions' replies text only
                   AVATARCHAT_MAX_SESSIONS_PER_CLIENT="1000", AVATARCHAT_MAX_CLIENT_BACKLOG="1000",
                   **self.extra_env)
        if self.workers:
            port = free_port()
            self.procs.append(subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly",
                                                "no"], stdout=subprocess.DEVNULL))
            self.redis_url = env["AVATARCHAT_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            # One job at a time per worker, so N workers use N cores (the embedded server uses render_threads).
            worker_env = dict(env, AVATARCHAT_RENDER_THREADS="1")
            for _ in range(self.workers):
                self.procs.append(self._start(["worker", "--metrics-port", "0"], worker_env))
        web_port = free_port()
        self.procs.append(self._start(["serve", "--port", str(web_port)], env))
        self.base = f"http://127.0.0.1:{web_port}"
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = Path(self._tmp.name) / f"{args[0]}-{len(self.procs)}.log"
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "avatarchat", "--log-level", "WARNING", *args], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        logs = Path(self._tmp.name).glob("*.log")
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.base + "/healthz", timeout=2)
                body = r.json() if r.status_code == 200 else {}
                # warming: the web node's background start-up work (see benchmarks/latency.py start_server)
                if len(body.get("workers", [None] * self.workers)) >= self.workers and not body.get("warming", False):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the deployment did not become healthy:\n" + self.logs())

    def hop_ms(self) -> float | None:
        """Mean Redis hop per clip (ms), from the web node's metrics."""
        total = count = None
        for line in httpx.get(self.base + "/metrics", timeout=5).text.splitlines():
            if line.startswith("avatarchat_redis_hop_seconds_sum "):
                total = float(line.split()[-1])
            elif line.startswith("avatarchat_redis_hop_seconds_count "):
                count = float(line.split()[-1])
        return 1000 * total / count if total is not None and count else None

    def clip_kb(self) -> float | None:
        """Mean size of the clips stored in Redis (kB)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        sizes = [client.strlen(k) for k in client.scan_iter(match="avatarchat:clip:*", count=500)]
        client.close()
        return sum(sizes) / len(sizes) / 1000 if sizes else None

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self._tmp.cleanup()
