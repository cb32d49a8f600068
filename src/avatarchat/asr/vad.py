"""Streaming voice activity detection with Silero VAD v6, run as ONNX by onnxruntime (no torch).

The model file ships inside the faster-whisper wheel (``faster_whisper/assets/silero_vad_v6.onnx``). Silero v5
and v6 take windows of exactly 512 samples at 16 kHz (32 ms) plus the 64 samples before them as context, and
carry an LSTM state from window to window. Clients send audio in multiples of 30 ms; ``VadStream`` re-cuts
it into 32 ms windows, so the frame size on the wire and the model's window need not agree.

Turns: speech starts once ``MIN_SPEECH_WINDOWS`` windows in a row score at least ``threshold``; it ends
after ``hangover_ms`` of windows below ``threshold - 0.15`` (hysteresis, so a soft syllable does not end a
turn). The first silent window is reported as a *pause*, which lets the listener start transcribing while
the hangover runs; speech in the hangover is a *resume*. While ``holding`` (hold-to-talk: the button is down)
silence never ends a turn; only ``flush`` (the button released) does. ``voiced`` counts the samples of the
current turn that were speech (windows at or above the lower threshold, the hangover's silence left out).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np

from avatarchat.asr.base import SAMPLE_RATE, as_float

WINDOW = 512
CONTEXT = 64
WINDOW_MS = WINDOW * 1000 / SAMPLE_RATE
MIN_SPEECH_WINDOWS = 2  # 64 ms: one loud click is not speech
NEG_MARGIN = 0.15


def bundled_model() -> Path:
    return Path(str(files("faster_whisper").joinpath("assets/silero_vad_v6.onnx")))


class SileroModel:
    """The ONNX session, shared by every stream (onnxruntime's ``run`` is thread-safe); one thread per call."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or bundled_model()
        self._session = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                opts.inter_op_num_threads = 1
                opts.intra_op_num_threads = 1
                opts.log_severity_level = 4
                self._session = onnxruntime.InferenceSession(str(self.path), sess_options=opts,
                                                             providers=["CPUExecutionProvider"])
        return self._session

    def warm_up(self) -> None:
        self._load()

    def run(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``windows``: (n, 576) float32 (64 context + 512 samples each) -> speech probabilities (n,), state."""
        probs, h, c = self._load().run(None, {"input": windows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["start", "pause", "resume", "end"]
    sample: int  # start: first sample of speech; pause and end: first sample after it; resume: where it resumed


class VadStream:
    """One audio stream's detector. Not thread-safe: one listener feeds it, one call at a time."""

    def __init__(self, model: SileroModel, threshold: float = 0.5, hangover_ms: float = 350.0) -> None:
        self.model = model
        self.threshold = threshold
        self.neg_threshold = max(0.01, threshold - NEG_MARGIN)
        self.hangover_windows = max(1, round(hangover_ms / WINDOW_MS))
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._tail = np.zeros(CONTEXT, np.float32)  # context for the next window
        self._pending = np.zeros(0, np.float32)  # samples not yet making a whole window
        self.samples = 0  # samples fed into windows so far
        self.speaking = False
        self.holding = False
        self.voiced = 0  # samples of speech in the current turn
        self._run = 0  # windows in a row above threshold (before a start)
        self._run_start = 0
        self._silent = 0  # windows in a row below neg_threshold (while speaking)
        self._pause_at = 0

    def feed(self, pcm: np.ndarray) -> list[VadEvent]:
        """Samples in (int16 or float32, 16 kHz mono, any length), turn events out."""
        audio = np.concatenate([self._pending, as_float(pcm)])
        n = len(audio) // WINDOW
        self._pending = audio[n * WINDOW:]
        if n == 0:
            return []
        body = audio[: n * WINDOW].reshape(n, WINDOW)
        context = np.vstack([self._tail, body[:-1, -CONTEXT:]]) if n > 1 else self._tail[None, :]
        self._tail = body[-1, -CONTEXT:].copy()
        probs, self._h, self._c = self.model.run(np.hstack([context, body]).astype(np.float32), self._h, self._c)
        events: list[VadEvent] = []
        for p in probs:
            events += self._step(float(p))
            self.samples += WINDOW
        return events

    def _step(self, p: float) -> list[VadEvent]:
        at = self.samples
        if not self.speaking:
            if p >= self.threshold:
                if self._run == 0:
                    self._run_start = at
                self._run += 1
                if self._run >= MIN_SPEECH_WINDOWS:
                    self.speaking, self._run, self._silent = True, 0, 0
                    self.voiced = MIN_SPEECH_WINDOWS * WINDOW
                    return [VadEvent("start", self._run_start)]
            else:
                self._run = 0
            return []
        if p < self.neg_threshold:
            self._silent += 1
            if self._silent == 1:
                self._pause_at = at
                if self.hangover_windows > 1:
                    return [VadEvent("pause", at)]
            if self._silent >= self.hangover_windows and not self.holding:
                self.speaking, self._silent = False, 0
                return [VadEvent("end", self._pause_at)]
            return []
        self.voiced += WINDOW
        if p >= self.threshold and self._silent:
            self._silent = 0
            return [VadEvent("resume", at)]
        return []

    @property
    def silence_since(self) -> int | None:
        """While speaking: the first sample of the silence the hangover is counting, or None (no silence)."""
        return self._pause_at if self.speaking and self._silent else None

    def flush(self) -> list[VadEvent]:
        """End of the stream: a turn still open ends where the audio does (or at its pause)."""
        if not self.speaking:
            return []
        self.speaking = False
        end = self._pause_at if self._silent else self.samples + len(self._pending)
        self._silent = 0
        return [VadEvent("end", end)]


def speech_segments(model: SileroModel, pcm: np.ndarray, threshold: float = 0.5,
                    hangover_ms: float = 350.0) -> list[tuple[int, int]]:
    """The (start, end) sample ranges of speech in a whole recording (``avatarchat listen --segments``)."""
    stream = VadStream(model, threshold, hangover_ms)
    events = stream.feed(pcm) + stream.flush()
    segments, start = [], None
    for ev in events:
        if ev.kind == "start":
            start = ev.sample
        elif ev.kind == "end" and start is not None:
            segments.append((start, ev.sample))
            start = None
    return segments
