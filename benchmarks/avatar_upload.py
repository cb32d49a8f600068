"""Your own avatar: time from an upload to the first clip with the new face, for a photo and a 10 s 1080p video,
and the memory a registered avatar holds (``python -m benchmarks.avatar_upload``).

A real server (``avatarchat serve``, echo LLM) in a subprocess. Per run: a new session uploads the file
(``POST /avatars`` -> 201), then asks ``/chat`` for one short sentence and waits for its ``clip_ready``; the idle
loop is fetched after that (it is built in the background). Memory: the server's RSS before the first upload
and after each kind, and the decoded frames the server reports (``avatarchat_avatar_bytes``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from websockets.sync.client import connect

from benchmarks.latency import new_session, start_server
from benchmarks.report import table, write_section

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "grace_hopper.jpg"


def portrait_video(seconds: float = 10.0, fps: int = 25) -> bytes:
    """A 1080x1920 (portrait 1080p) H.264 MP4 of the photo drifting gently, as a phone would record it."""
    import io

    import av

    g = cv2.imread(str(PHOTO))[:, :, ::-1]
    g = cv2.resize(g, (1080, int(g.shape[0] * 1080 / g.shape[1])), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((1920, 1080, 3), 90, np.uint8)
    top = (1920 - g.shape[0]) // 2
    canvas[top:top + g.shape[0]] = g
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1080, 1920, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        n = int(seconds * fps)
        for k in range(n):
            m = np.float32([[1, 0, 6 * np.sin(2 * np.pi * k / n)], [0, 1, 4 * np.sin(4 * np.pi * k / n)]])
            frame = cv2.warpAffine(canvas, m, (1080, 1920), borderMode=cv2.BORDER_REPLICATE)
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def one_upload(base: str, data: bytes, name: str) -> dict[str, float]:
    session = new_session(base)
    with connect(base.replace("http://", "ws://") + f"/ws?session_id={session}") as ws:
        json.loads(ws.recv(timeout=30))  # session_state
        t0 = time.perf_counter()
        r = httpx.post(base + "/avatars", data={"session_id": session}, files={"file": (name, data)}, timeout=300)
        t_reg = time.perf_counter() - t0
        if r.status_code != 201:
            raise RuntimeError(f"upload refused: {r.status_code} {r.text}")
        body = r.json()
        chat = httpx.post(base + "/chat", json={"session_id": session, "message": "Hello, this is my new face."},
                          timeout=120)
        chat.raise_for_status()
        while True:
            ev = json.loads(ws.recv(timeout=300))
            if ev["type"] == "clip_ready":
                t_clip = time.perf_counter() - t0
                break
            if ev["type"] == "error":
                raise RuntimeError(ev["message"])
    idle = httpx.get(base + body["idle_url"], timeout=300)
    idle.raise_for_status()
    t_idle = time.perf_counter() - t0
    return {"register_ms": t_reg * 1000, "first_clip_ms": t_clip * 1000,
            "after_upload_ms": (t_clip - t_reg) * 1000, "idle_ready_ms": t_idle * 1000,
            "frames": body["frames"], "size": f"{body['width']}x{body['height']}", "bytes": len(data)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="photo uploads (the video is uploaded once)")
    args = ap.parse_args()
    photo = PHOTO.read_bytes()
    video = portrait_video()
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp))
        try:
            warm = new_session(base)  # the first reply pays for voice calibration; not part of an upload
            httpx.post(base + "/chat", json={"session_id": warm, "message": "Hi."}, timeout=120)
            time.sleep(2)
            rss0 = rss_mb(proc.pid)
            photos = [one_upload(base, photo, "me.jpg") for _ in range(args.runs)]
            rss_photo = rss_mb(proc.pid)
            frames_photo = metric(base, "avatarchat_avatar_bytes")
            vid = one_upload(base, video, "me.mp4")
            rss_video = rss_mb(proc.pid)
            frames_video = metric(base, "avatarchat_avatar_bytes") - frames_photo
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def med(key: str) -> float:
        return statistics.median(p[key] for p in photos)

    rows = [["photo (tests/data/grace_hopper.jpg)", f"{len(photo) / 1e3:.0f} kB", photos[0]["size"], 1, args.runs,
             round(med("register_ms")), round(med("after_upload_ms")), round(med("first_clip_ms")),
             round(med("idle_ready_ms"))],
            ["video 10 s, 1080x1920 H.264", f"{len(video) / 1e6:.1f} MB", vid["size"], vid["frames"], 1,
             round(vid["register_ms"]), round(vid["after_upload_ms"]), round(vid["first_clip_ms"]),
             round(vid["idle_ready_ms"])]]
    body = table(["upload", "file", "rendered at", "frames", "runs", "POST -> 201 (ms)", "201 -> first clip (ms)",
                  "POST -> first clip (ms)", "POST -> idle loop fetched (ms)"], rows)
    body += (f"\n\nMemory (server RSS): {rss0:.0f} MB before the first upload; +{rss_photo - rss0:.0f} MB after "
             f"{args.runs} photo avatars (their decoded frames: {frames_photo / 1e6 / args.runs:.1f} MB each); "
             f"+{rss_video - rss_photo:.0f} MB after the video avatar (decoded frames: {frames_video / 1e6:.0f} MB). "
             "RSS also holds each avatar's rigs (built on first render) and allocator slack, so it is the upper "
             "figure; `AVATARCHAT_AVATAR_MAX_TOTAL_MB` bounds the decoded frames.")
    body += (f"\n\nLoad average when it started: {' '.join(load)} (a shared 2-core machine; other work was "
             "running). Echo LLM, default voice, meshwarp at `render_max_side` 512. `201 -> first clip`: `/chat` "
             "with one sentence until its `clip_ready` (TTS + render + encode with the new face). Targets: a photo's "
             "first clip within 1.5 s of the upload, a 10 s 1080p video's within 10 s.")
    write_section("avatar_upload", "Your own avatar: upload to first clip (benchmarks/avatar_upload.py)", body,
                  "python -m benchmarks.avatar_upload")


if __name__ == "__main__":
    main()
