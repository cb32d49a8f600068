"""Test helpers: a real uvicorn server on a loopback port, and clip decoding with PyAV."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; scripts/test.sh installs it
ARGS = [  # what a headless Chromium needs on a machine with no network and no GPU (see the env notes)
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, timeout_s: float, alive: Callable[[], bool], what: str = "server") -> None:
    """Until ``base``/healthz answers 200; RuntimeError if ``alive()`` turns false or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


@contextmanager
def running(app: FastAPI, timeout_s: float = 120.0, **options) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL and stops it afterwards. ``options`` go to
    uvicorn.Config (e.g. ``server.protocol.uvicorn_options(settings)``, as ``avatarchat serve`` uses)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws="websockets-sansio", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, timeout_s, thread.is_alive, "test server")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Clip:
    frames: np.ndarray  # (n, h, w, 3) RGB
    fps: float
    audio: np.ndarray  # float32 mono
    audio_rate: int
    video_duration_s: float
    audio_duration_s: float


def decode_clip(data: bytes) -> Clip:
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(io.BytesIO(data)) as c:
        a_stream = c.streams.audio[0]
        rate = a_stream.rate
        a_dur = float(a_stream.duration * a_stream.time_base)
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)]).astype(np.float32)
    return Clip(frames, fps, audio, rate, len(frames) / fps, a_dur)


def frame_rms(clip: Clip) -> np.ndarray:
    """Audio RMS under each video frame."""
    hop = clip.audio_rate / clip.fps
    out = []
    for k in range(len(clip.frames)):
        seg = clip.audio[int(k * hop) : int((k + 1) * hop)]
        out.append(float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0)
    return np.array(out)


def new_session(base: str) -> str:
    """A session token issued by the server (POST /session), as the page gets one."""
    r = httpx.post(base + "/session", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


_named: dict[tuple[str, str], str] = {}


def session_for(base: str, name: str) -> str:
    """The server-issued token standing for the test's readable session ``name`` (issued on first use)."""
    key = (base, name)
    if key not in _named:
        _named[key] = new_session(base)
    return _named[key]


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV bytes of ``pcm`` (what the fake TTS services answer with)."""
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm).astype("<i2").tobytes())
    return buf.getvalue()


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running_pid(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
