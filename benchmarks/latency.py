"""End-to-end latency through the real server's HTTP + WebSocket interface.

Starts ``avatarchat serve`` in a subprocess (echo LLM so the sentence count is exact; Piper; meshwarp), sends
replies of 1, 3 and 6 sentences, and reports per reply size (median over the runs):
  /chat -> reply_text (HTTP answer), /chat -> first clip_ready, first clip_ready after the first sentence's
  text was known, real-time factor of the whole reply (time to its last clip / seconds of speech), and the
  playback gap a client would see if it started the first clip on arrival and played clips back to back.

    .venv/bin/python benchmarks/latency.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avatarchat.pipeline.sentences import FIRST_SECONDS, split_sentences  # noqa: E402
from benchmarks.report import table, write_section  # noqa: E402
from tests.helpers import free_port  # noqa: E402

SENTENCES = [
    "Hello there, it is good to see you again today.",
    "I can tell you about the weather, the news, or anything else.",
    "Speaking of which, the sky looks clear this afternoon.",
    "Tomorrow might bring a little rain in the morning.",
    "Remember to take an umbrella if you go out early.",
    "Let me know what else you would like to talk about.",
]


def start_server(data_dir: Path, llm: str | None = "echo") -> tuple[subprocess.Popen, str]:
    """``avatarchat serve`` on a free loopback port; ``llm=None`` keeps the server's default reply backend.
    Returns once the server has finished its background start-up work (``/healthz`` ``warming``: the ASR model,
    the default voices' models; a fresh Kokoro cache is rewritten then): a server people use has long done it,
    and measured beside it the first rounds paid for it."""
    port = free_port()
    env = dict(os.environ, AVATARCHAT_DATA_DIR=str(data_dir), AVATARCHAT_PORT=str(port))
    if llm is not None:
        env["AVATARCHAT_LLM_BACKEND"] = llm
    proc = subprocess.Popen([sys.executable, "-m", "avatarchat", "--log-level", "WARNING", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            health = httpx.get(base + "/healthz", timeout=1)
            if health.status_code == 200 and not health.json().get("warming", False):
                return proc, base
            time.sleep(0.2)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])


def new_session(base: str) -> str:
    return httpx.post(base + "/session", timeout=30).json()["session_id"]


def one_reply(base: str, n: int) -> dict[str, float]:
    session = new_session(base)
    url = base.replace("http://", "ws://") + f"/ws?session_id={session}"
    with connect(url) as ws:
        t0 = time.perf_counter()
        r = httpx.post(base + "/chat", json={"session_id": session, "message": " ".join(SENTENCES[:n])}, timeout=120)
        t_http = time.perf_counter() - t0
        r.raise_for_status()
        clips, first_token_ms, reply_id = [], 0.0, r.json()["reply_id"]
        while True:
            ev = json.loads(ws.recv(timeout=120))
            now = time.perf_counter() - t0
            if ev["type"] == "reply_text":
                first_token_ms = ev["timings_ms"]["llm_first_token"]
            elif ev["type"] == "clip_ready":
                clips.append((now, ev["duration_s"]))
            elif ev["type"] == "error":
                raise RuntimeError(ev["message"])
            elif ev["type"] == "speech_done":
                break
        # Play it out as a page would, reporting each clip, so that the next run finds an idle server: a reply
        # still playing counts as another session speaking, and the busy rules then cut its chunks differently.
        end = None
        for seq, (ready, dur) in enumerate(clips):
            start = ready if end is None else max(ready, end)
            end = start + dur
            for kind, at in (("clip_started", start), ("clip_ended", end)):
                time.sleep(max(0.0, at - (time.perf_counter() - t0)))
                ws.send(json.dumps({"type": kind, "reply": reply_id, "seq": seq}))
    expected = len(split_sentences(" ".join(SENTENCES[:n]), first_seconds=FIRST_SECONDS))  # the first one is cut
    assert len(clips) == expected, (len(clips), expected)
    speech_s = sum(d for _, d in clips)
    end, gaps = None, []
    for ready, dur in clips:
        start = ready if end is None else max(ready, end)
        if end is not None:
            gaps.append(start - end)
        end = start + dur
    return {
        "reply_text_ms": t_http * 1000,
        "first_clip_ms": clips[0][0] * 1000,
        "first_clip_after_text_ms": clips[0][0] * 1000 - first_token_ms,
        "rtf": clips[-1][0] / speech_s,
        "speech_s": speech_s,
        "max_gap_ms": max(gaps, default=0.0) * 1000,
    }


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def barge_in(base: str, when: str) -> dict[str, float]:
    """Interrupt a 6-sentence reply: ``when="rendering"`` right after its first clip (later sentences still
    render), ``when="playing"`` once every clip is rendered while the page still plays the second one (it reports
    clip 0 ended and clip 1 started). How fast is the old reply cancelled, and the new one heard?"""
    session = new_session(base)
    url = base.replace("http://", "ws://") + f"/ws?session_id={session}"
    with connect(url) as ws:
        old = httpx.post(base + "/chat", json={"session_id": session, "message": " ".join(SENTENCES)}, timeout=120)
        old_id = old.json()["reply_id"]
        until = "clip_ready" if when == "rendering" else "speech_done"
        while json.loads(ws.recv(timeout=120))["type"] != until:
            pass
        if when == "playing":
            for kind, seq in (("clip_started", 0), ("clip_ended", 0), ("clip_started", 1)):
                ws.send(json.dumps({"type": kind, "reply": old_id, "seq": seq}))
            time.sleep(0.5)
        t0 = time.perf_counter()
        new_id = httpx.post(base + "/chat", json={"session_id": session, "message": SENTENCES[0]},
                            timeout=120).json()["reply_id"]
        cancelled_ms = first_new_ms = None
        late_old = 0
        while True:
            ev = json.loads(ws.recv(timeout=120))
            now = (time.perf_counter() - t0) * 1000
            if ev["type"] == "speech_cancelled" and ev["reply"] == old_id:
                cancelled_ms = now
            elif ev["type"] == "clip_ready" and ev["reply"] == old_id:
                late_old += 1
            elif ev["type"] == "clip_ready" and ev["reply"] == new_id and first_new_ms is None:
                first_new_ms = now
            elif ev["type"] == "speech_done" and ev["reply"] == new_id:
                break
    return {"cancelled_ms": cancelled_ms if cancelled_ms is not None else float("nan"),
            "first_new_ms": first_new_ms or float("nan"), "late_old": late_old}


def browser_gaps(base: str, replies: int = 3) -> list[float]:
    """Clip-to-clip gaps measured in headless Chromium: the page's own `ended` -> next `playing` timestamps."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--autoplay-policy=no-user-gesture-required"]
    gaps: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args, headless=True)
        page = browser.new_page(bypass_csp=True)  # Playwright's string predicates need eval; the page does not
        page.goto(base + "/")
        page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
        for _ in range(replies):
            played = page.evaluate("window.avatarchat.stats.clipsPlayed.length")
            page.fill("#message", " ".join(SENTENCES[:3]))
            page.click("#send")
            clips = len(split_sentences(" ".join(SENTENCES[:3]), first_seconds=FIRST_SECONDS))
            page.wait_for_function(f"window.avatarchat.stats.clipsPlayed.length >= {played + clips}",
                                   timeout=120000)
        gaps = page.evaluate("window.avatarchat.stats.gapsMs")
        browser.close()
    return gaps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp))
        try:
            one_reply(base, 1)
            rows = []
            for n in (1, 3, 6):
                runs = [one_reply(base, n) for i in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append([n, args.runs, round(med["speech_s"], 2), round(med["reply_text_ms"], 1),
                             round(med["first_clip_ms"]), round(med["first_clip_after_text_ms"]),
                             round(med["rtf"], 3), round(max(r["max_gap_ms"] for r in runs), 1)])
            stops_before = (metric(base, "avatarchat_cancel_stop_seconds_count"),
                            metric(base, "avatarchat_cancel_stop_seconds_sum"))
            barges = {when: [barge_in(base, when) for _ in range(args.runs)] for when in ("rendering", "playing")}
            gaps = browser_gaps(base, args.runs)
            stops = (metric(base, "avatarchat_cancel_stop_seconds_count") - stops_before[0],
                     metric(base, "avatarchat_cancel_stop_seconds_sum") - stops_before[1])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    body = table(["sentences", "runs", "speech (s)", "/chat -> reply_text (ms)", "/chat -> first clip_ready (ms)",
                  "first clip after its text (ms)", "whole-reply RTF", "worst playback gap (ms)"], rows)
    body += ("\n\nBarge-in on a 6-sentence reply, at two points: while it still renders (right after its first "
             "clip) and after every clip is rendered while the page still plays it (the case the server used to "
             f"miss), {args.runs} runs each:\n\n")
    body += table(["interrupted", "/chat -> speech_cancelled (ms)", "/chat -> new reply's first clip (ms)",
                   "old clips after the new /chat"],
                  [[when, round(statistics.median(b["cancelled_ms"] for b in bs)),
                    round(statistics.median(b["first_new_ms"] for b in bs)), sum(b["late_old"] for b in bs)]
                   for when, bs in barges.items()])
    body += (f"\n\nRunning renders stopped by those barge-ins: {int(stops[0])}, mean stop time "
             + (f"{1000 * stops[1] / stops[0]:.1f} ms." if stops[0] else "n/a (none was running)."))
    body += (f"\n\nIn the browser (headless Debian Chromium playing {args.runs} replies of 3 sentences on the page, "
             "gap = the next clip's `playing` event minus the previous clip's `ended` event): "
             f"{len(gaps)} gaps, median {statistics.median(gaps):.1f} ms, worst {max(gaps):.1f} ms "
             "(one frame is 40 ms)." if gaps else "\n\nNo clip-to-clip gap was measured in the browser.")
    body += ("\n\nMedians over the runs, except the gap (worst). Echo LLM, the default voice (Piper "
             "`en_US-joe-medium+female`), meshwarp at the "
             "default avatar "
             "(512x384, head motion on), libx264 `veryfast` with subme 1. Targets: first clip_ready < 1000 ms "
             "after the first "
             "sentence's text is known; whole-reply RTF < 0.5. The gap is what a client starting the first clip "
             "on arrival would wait between clips (0 = the next clip was always ready in time). Barge-in target: "
             "the interrupted reply's running render/encode stops within 200 ms (stop time = from the cancel to "
             "the worker having dropped the clip, from the server's `avatarchat_cancel_stop_seconds`).")
    write_section("latency", "End-to-end latency (benchmarks/latency.py)", body, "benchmarks/latency.py")


if __name__ == "__main__":
    main()
