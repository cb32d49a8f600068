"""Many sessions speaking at once: speech delivered per wall second, first-clip latency and late clips.

For 1, 2, 4 and 8 sessions, every session opens its socket and posts a 3-sentence message at the same moment
(echo LLM, so the sentences are exact; Piper; meshwarp). Per session: /chat -> first clip_ready, and how
many clips arrive after a page playing the reply from its first clip, back to back, would need them (late).
Over the round: speech seconds delivered per wall second (all clips' durations / first /chat to last clip).

    .venv/bin/python benchmarks/scale.py [--modes embedded,redis1,redis2] [--sessions 1,2,4,8] [--rounds 2]

``embedded`` is one ``avatarchat serve`` process; ``redisN`` is a web node with no worker of its own, N
``avatarchat worker`` processes and a private ``redis-server`` (see benchmarks/cluster.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.cluster import Cluster  # noqa: E402
from benchmarks.latency import SENTENCES, new_session  # noqa: E402
from benchmarks.report import table, write_section  # noqa: E402

MESSAGE = " ".join(SENTENCES[:3])


def one_session(base: str, session: str, go: threading.Barrier, out: dict) -> None:
    """Open the socket and an HTTP client, wait for every other session, post, collect clip arrivals until
    speech_done. The client is made before the clock starts, as a page's connection is open before it posts:
    eight clients made at once (an SSL context each) took 70-110 ms of the timed first clip, and that CPU."""
    url = base.replace("http://", "ws://") + f"/ws?session_id={session}"
    with connect(url) as ws, httpx.Client(timeout=300) as http:
        ws.recv(timeout=30)  # session_state
        go.wait()
        t0 = time.perf_counter()
        http.post(base + "/chat", json={"session_id": session, "message": MESSAGE}).raise_for_status()
        clips: list[tuple[float, float, float]] = []  # (arrival since t0, duration, arrival absolute)
        while True:
            ev = json.loads(ws.recv(timeout=300))
            if ev["type"] == "clip_ready":
                now = time.perf_counter()
                clips.append((now - t0, ev["duration_s"], now))
            elif ev["type"] in ("error", "speech_skipped"):
                raise RuntimeError(ev["message"])
            elif ev["type"] == "speech_done":
                break
    out[session] = {"t0": t0, "clips": clips}


def late_clips(clips: list[tuple[float, float, float]], tolerance_s: float = 0.04) -> int:
    """Clips that arrive after a page playing from the first clip, back to back, reaches them."""
    late, end = 0, None
    for arrival, duration, _ in clips:
        if end is not None and arrival > end + tolerance_s:
            late += 1
        start = arrival if end is None else max(arrival, end)
        end = start + duration
    return late


def one_round(base: str, n: int) -> dict[str, float | list[float]]:
    sessions = [new_session(base) for _ in range(n)]
    go = threading.Barrier(n)
    out: dict = {}
    threads = [threading.Thread(target=one_session, args=(base, s, go, out)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == n, "a session failed"
    start = min(r["t0"] for r in out.values())
    end = max(c[2] for r in out.values() for c in r["clips"])
    speech = sum(c[1] for r in out.values() for c in r["clips"])
    return {"first": [r["clips"][0][0] for r in out.values()],
            "late": sum(late_clips(r["clips"]) for r in out.values()),
            "clips": sum(len(r["clips"]) for r in out.values()), "speech_per_s": speech / (end - start)}


def measure(base: str, counts: list[int], rounds: int) -> list[list[object]]:
    one_round(base, 1)  # warm-up: calibration, first render
    rows = []
    for n in counts:
        runs = [one_round(base, n) for _ in range(rounds)]
        firsts = [f for r in runs for f in r["first"]]
        rows.append([n, rounds, round(statistics.median(firsts) * 1000), round(max(firsts) * 1000),
                     sum(r["late"] for r in runs), sum(r["clips"] for r in runs),
                     round(statistics.median(r["speech_per_s"] for r in runs), 2)])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="embedded,redis1,redis2")
    ap.add_argument("--sessions", default="1,2,4,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--label", default="", help="a note for the mode column (e.g. 'FCFS, before')")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for every process (repeatable)")
    ap.add_argument("--note", default="", help="a paragraph added to the section (e.g. the figures before a change)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    rows = []
    for mode in args.modes.split(","):
        workers = 0 if mode == "embedded" else int(mode.removeprefix("redis"))
        with Cluster(workers=workers, extra_env=dict(e.split("=", 1) for e in args.env)) as cluster:
            for row in measure(cluster.base, counts, args.rounds):
                rows.append([mode + (f" ({args.label})" if args.label else ""), *row])
            overhead = cluster.hop_ms() if workers else None
            size = cluster.clip_kb() if workers else None
        if overhead is not None:
            rows[-1].append(f"{overhead:.1f} ms per clip (mean over the mode's clips); clips in Redis "
                            f"{size or 0:.0f} kB each on average")
    body = table(["mode", "sessions", "rounds", "first clip median (ms)", "first clip worst (ms)", "late clips",
                  "clips", "speech s per wall s"], [r[:8] for r in rows])
    notes = [f"{r[0]}: Redis hop {r[8]}" for r in rows if len(r) > 8]
    body += "\n\n" + "\n".join(f"- {n}" for n in notes) if notes else ""
    body += f"\n\n{args.note}" if args.note else ""
    body += ("\n\nEvery session posts a 3-sentence message at once (echo LLM, the default voice at the time "
             "of the run (now Piper `en_US-joe-medium+female`), meshwarp "
             "on the default avatar at the time of the run). `late`: a clip that arrives after a page playing the "
             "reply from its first clip, back to back, needs it (40 ms tolerance). Target (issue 12): with 8 "
             "sessions, first clip median < 1200 ms and no clip late.")
    if args.no_write:
        print(body)
    else:
        write_section("scale", "Many sessions at once (benchmarks/scale.py)", body, "benchmarks/scale.py")


if __name__ == "__main__":
    main()
