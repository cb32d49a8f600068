"""Prometheus metrics for one app instance (its own registry: two apps in one process never share counters)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class _QueueDepths:
    """Reads queue depths at scrape time instead of tracking them on every put/get."""

    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self._depths = depths

    def collect(self):
        depths = self._depths()
        g = GaugeMetricFamily("avatarchat_queue_depth", "Speech jobs waiting, summed over sessions")
        g.add_metric([], float(sum(depths.values())))
        yield g
        m = GaugeMetricFamily("avatarchat_queue_depth_max", "Longest single-session speech job queue")
        m.add_metric([], float(max(depths.values(), default=0)))
        yield m
        s = GaugeMetricFamily("avatarchat_sessions", "Live sessions")
        s.add_metric([], float(len(depths)))
        yield s


class _AsrLoad:
    """Speech recognition waiting and running, read at scrape time."""

    def __init__(self, pending: Callable[[], int], running: Callable[[], int]) -> None:
        self._pending, self._running = pending, running

    def collect(self):
        p = GaugeMetricFamily("avatarchat_asr_pending", "Transcriptions waiting for an ASR thread, all sockets")
        p.add_metric([], float(self._pending()))
        yield p
        r = GaugeMetricFamily("avatarchat_asr_running", "Transcriptions running")
        r.add_metric([], float(self._running()))
        yield r


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def hist(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, buckets=LATENCY_BUCKETS, registry=self.registry)

        self.llm_first_token = hist("avatarchat_llm_first_token_seconds", "/chat to the LLM's first text piece")
        self.llm_total = hist("avatarchat_llm_total_seconds", "/chat to the LLM's last text piece")
        self.tts = hist("avatarchat_tts_seconds", "TTS time per sentence")
        self.render = hist("avatarchat_render_seconds", "Rendering time per clip")
        self.encode = hist("avatarchat_encode_seconds", "Encoding time per clip")
        self.cancel_stop = hist("avatarchat_cancel_stop_seconds",
                                "Barge-in: from the cancel to the running render/encode having stopped")
        self.first_clip = hist("avatarchat_chat_to_first_clip_seconds", "/chat to the reply's first clip_ready")
        self.redis_hop = hist("avatarchat_redis_hop_seconds", "Redis mode: per clip, the job's trip to an idle "
                              "worker, storing the clip and the clip_ready's trip back (transport, not work)")
        self.clips = Counter("avatarchat_clips", "Clips announced", registry=self.registry)
        self.small_clips = Counter("avatarchat_clips_small", "Clips rendered smaller (busy_max_side) because "
                                   "renders were falling behind", registry=self.registry)
        self.late_clips = hist("avatarchat_clip_late_seconds", "Clips announced more than a frame after a page "
                               "playing the reply back to back would have finished the clips before them: how "
                               "late (the avatar stood still that long; the server cannot keep up)")
        self.errors = Counter("avatarchat_errors", "Error events sent", ["code"], registry=self.registry)
        self.cancelled = Counter("avatarchat_replies_cancelled", "Replies cut short by barge-in",
                                 registry=self.registry)
        self.avatar_uploads = Counter("avatarchat_avatar_uploads", "Avatar uploads, by result (ok or the refusal "
                                      "code)", ["result"], registry=self.registry)
        self.avatar_register = hist("avatarchat_avatar_register_seconds", "An accepted upload: checks, decoding "
                                    "and face registration")
        self.avatars = Gauge("avatarchat_avatars_uploaded", "Uploaded avatars held", registry=self.registry)
        self.avatar_bytes = Gauge("avatarchat_avatar_bytes", "Decoded frames of the uploaded avatars held, in bytes",
                                  registry=self.registry)
        self.avatar_shared = Counter("avatarchat_avatar_shared", "Redis mode: uses of an uploaded avatar, by "
                                     "result (hit: registered here already; registered: fetched from Redis and "
                                     "registered here; gone: deleted or expired, dropped here)", ["result"],
                                     registry=self.registry)

        self.voice_cpu = Counter("avatarchat_voice_cpu_seconds", "Voice input work, all sockets: asr = seconds "
                                 "holding an ASR thread, vad = VAD CPU seconds", ["stage"], registry=self.registry)

        self.false_early_ends = Counter("avatarchat_voice_false_early_ends", "Spoken turns ended sooner than "
                                        "vad_hangover_ms because their words seemed finished, after which the "
                                        "person went on speaking within that hangover", registry=self.registry)
        self.early_answers = Counter("avatarchat_voice_early_answers", "Spoken turns answered at their pause, "
                                     "before the hangover passed (voice_early_answer): started, committed (the "
                                     "turn ended with those words; shown) or discarded (the person went on, or "
                                     "the words changed; never shown)", ["outcome"], registry=self.registry)
        self.early_wasted_clips = Counter("avatarchat_voice_early_wasted_clips", "Clips rendered for early answers "
                                          "that were discarded (work thrown away)", registry=self.registry)

        self.voice_yields = Counter("avatarchat_voice_yields", "Times the avatar yielded to the person's voice, "
                                    "by outcome: resumed (a backchannel or noise) or cancelled (a real "
                                    "interruption)", ["outcome"], registry=self.registry)

    def early_answer(self, outcome: str, clips: int) -> None:
        self.early_answers.labels(outcome).inc()
        if clips:
            self.early_wasted_clips.inc(clips)

    def watch_asr(self, pending: Callable[[], int], running: Callable[[], int]) -> None:
        self.registry.register(_AsrLoad(pending, running))

    def watch_queues(self, depths: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_QueueDepths(depths))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
