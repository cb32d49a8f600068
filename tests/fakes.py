"""Fakes around one stage, so ordering, barge-in, queue-full and error paths run in milliseconds without a
server, Piper or mediapipe (after pipecat's tests/utils.py and livekit's tests/fake_tts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from avatarchat.data import Message, Speech
from avatarchat.errors import BackendError, Cancelled
from avatarchat.events import Event
from avatarchat.metrics import Metrics
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.lane import RenderedClip
from avatarchat.pipeline.reply import Reply
from avatarchat.tts.base import TTS

RATE = 16000


def speech_for(text: str, seconds_per_char: float = 0.01) -> Speech:
    """Deterministic 'speech': a tone whose length follows the text."""
    n = max(1, int(len(text) * seconds_per_char * RATE))
    return Speech(pcm=(1000 * np.sin(np.arange(n) / 8)).astype(np.int16), sample_rate=RATE)


class FakeLLM:
    """Streams the given pieces (or echoes the last user message), recording every history it was given."""

    name = "fake"

    def __init__(self, pieces: list[str] | None = None, delay_s: float = 0.0) -> None:
        self.pieces = pieces
        self.delay_s = delay_s
        self.seen: list[list[Message]] = []

    async def stream(self, history: list[Message]) -> AsyncIterator[str]:
        self.seen.append(list(history))
        for piece in self.pieces if self.pieces is not None else [history[-1].content]:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield piece

    def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class FakeEngine:
    """The lanes' engine: ``voice`` fails on texts in ``fail_voice``; ``render`` fails on ``fail_render``, takes
    ``slow_render``'s seconds for its texts, and waits on ``gate`` (when closed) while checking the reply's stop
    event, as a real render checks per frame."""

    def __init__(self, fail_voice: set[str] = frozenset(), fail_render: set[str] = frozenset(),
                 crash_render: set[str] = frozenset(), slow_render: dict[str, float] | None = None) -> None:
        self.metrics = Metrics()
        self.secrets: tuple[str, ...] = ()
        self.fail_voice, self.fail_render, self.crash_render = fail_voice, fail_render, crash_render
        self.slow_render = slow_render or {}  # text -> seconds its render takes
        self.gate = asyncio.Event()
        self.gate.set()
        self.voice_gate = asyncio.Event()
        self.voice_gate.set()
        self.voicing_cancelled = 0
        self.rendered: list[str] = []
        self.started: list[str] = []  # "voice <text>" / "render <text>", in the order the work began
        self.alone: list[bool] = []  # per voice call: whether the lane said nothing else was using the CPU

    def voice_needs_slot(self, job: SpeechJob) -> bool:
        return True

    async def voice(self, job: SpeechJob, alone: bool = False) -> Speech:
        self.started.append(f"voice {job.text}")
        self.alone.append(alone)
        try:
            await self.voice_gate.wait()
        except asyncio.CancelledError:
            self.voicing_cancelled += 1
            raise
        if job.text in self.fail_voice:
            raise BackendError(f"fake TTS cannot say {job.text!r} (upstream said: secret detail)")
        return speech_for(job.text)

    async def render(self, job: SpeechJob, speech: Speech, reply: Reply) -> RenderedClip:
        self.started.append(f"render {job.text}")
        while not self.gate.is_set():
            if reply.stop_event.is_set():
                raise Cancelled("render cancelled")
            await asyncio.sleep(0.002)
        if reply.stop_event.is_set():
            raise Cancelled("render cancelled")
        await asyncio.sleep(self.slow_render.get(job.text, 0.0))
        if job.text in self.crash_render:
            raise RuntimeError("renderer bug")
        if job.text in self.fail_render:
            raise BackendError("fake render failed")
        self.rendered.append(job.text)
        return RenderedClip(path=Path("/nonexistent") / f"{job.id}.mp4", url=f"/clips/{job.id}.mp4",
                            duration_s=speech.duration_s, render_s=0.001, encode_s=0.001, total_s=0.002)


class Events:
    """Collects what a lane publishes, as a socket would receive it."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.items.append(event.wire())
        self._changed.set()

    def types(self, reply: str | None = None) -> list[str]:
        return [e["type"] for e in self.items if reply is None or e.get("reply") == reply]

    async def wait_for(self, kind: str, reply: str | None = None, timeout_s: float = 2.0) -> dict:
        async def until() -> dict:
            while True:
                for e in self.items:
                    if e["type"] == kind and (reply is None or e.get("reply") == reply):
                        return e
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(until(), timeout_s)


def speak(lane, texts: list[str], voice: str = "fake:voice") -> Reply:
    """A whole reply of ``texts`` submitted to ``lane`` at once, as the reply writer would."""
    reply = Reply()
    lane.begin(reply)
    for t in texts:
        lane.submit(reply, t, voice)
    lane.end(reply)
    return reply


class FailOn(TTS):
    """A TTS (wrapping a real one) that fails every sentence containing ``word``: a middle sentence that fails
    on demand (punctuation-only sentences used to, and are now left out instead)."""

    def __init__(self, inner, word: str = "Explode") -> None:
        self.inner, self.word = inner, word
        self.name, self.default_voice, self.network_bound = inner.name, inner.default_voice, False

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        if self.word in text:
            raise BackendError(f"{self.name} cannot say {self.word!r}")
        return await self.inner.synthesize(text, voice)

    def voices(self) -> list[str]:
        return self.inner.voices()

    def describe(self, voice: str):  # noqa: ANN201 - the inner backend's VoiceLabel
        return self.inner.describe(voice)

    def warm_up(self) -> None:
        self.inner.warm_up()

    async def aclose(self) -> None:
        pass
