"""Real processes for the Redis-mode tests: a private ``redis-server`` on a free port, web nodes
(``avatarchat serve``) and speech workers (``tests.cluster_worker``), each its own OS process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


class RedisServer:
    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (scripts/bootstrap.sh --test installs it)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


class Processes:
    """Web nodes and workers sharing one Redis and one settings environment."""

    def __init__(self, redis_url: str, data_dir: Path, **env: str) -> None:
        self.env = dict(os.environ, AVATARCHAT_REDIS_URL=redis_url, AVATARCHAT_DATA_DIR=str(data_dir),
                        AVATARCHAT_LLM_BACKEND="echo", AVATARCHAT_RATE_PER_CLIENT="0",
                        AVATARCHAT_RATE_PER_SESSION="0", AVATARCHAT_WORKER_METRICS_PORT="0",
                        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", **env)
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen([sys.executable, *args], env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def web(self, name: str, **env: str) -> str:
        """A web node; ``env``: settings of this node only (e.g. its own AVATARCHAT_DATA_DIR)."""
        port = free_port()
        self._spawn(name, ["-m", "avatarchat", "--log-level", "INFO", "serve", "--port", str(port)], env)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, 180, f"web node {name}")
        return base

    def worker(self, name: str, **env: str) -> subprocess.Popen:
        return self._spawn(name, ["-m", "tests.cluster_worker"], env)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (httpx.HTTPError, redis.RedisError, KeyError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def live_workers(base: str) -> list[str]:
    return httpx.get(base + "/healthz", timeout=5).json().get("workers", [])
