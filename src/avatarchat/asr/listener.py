"""Voice input per socket: audio frames in, turn and transcript events out, finished turns handed on as text.

``VoiceInput`` is shared (the ASR backend, the VAD model and the threads they run in); each socket that sends
audio gets its own ``Listener`` with its own bounded frame queue, VAD state and audio buffer, so one session's
audio never reaches another's. The event loop only moves frames: VAD windows and ASR run in threads.

A turn: the VAD's ``start`` is reported at once (``on_speech``: the server cancels the avatar's speech there,
which is what makes voice barge-in fast); while the person speaks, a partial transcript at most every
``PARTIAL_EVERY_S`` when the ASR threads are idle; at the first silent window the whole turn is transcribed
speculatively, so when the hangover has passed the final text is usually ready; speech during the hangover
throws that guess away. Finals are delivered in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from avatarchat.asr.base import ASR, SAMPLE_RATE
from avatarchat.asr.scheduler import FairRecognizer, Owner, Superseded, TooFast
from avatarchat.asr.vad import SileroModel, VadEvent, VadStream
from avatarchat.events import ErrorEvent, Event, TranscriptEvent, VadState

log = logging.getLogger(__name__)

PRE_ROLL_S = 0.25  # audio kept before the VAD's start: the first consonant often scores low
MAX_TURN_S = 28.0  # Whisper hears 30 s at a time: a longer turn is cut here
PARTIAL_EVERY_S = 1.0
QUEUE_FRAMES = 64  # frames waiting for the VAD (64 x 60 ms: about 4 s of audio)


class VoiceInput:
    """What every listener shares; ``asr_threads`` bounds the CPU all sessions' recognition may take, shared
    fairly between clients (asr/scheduler.py)."""

    def __init__(self, asr: ASR, vad: SileroModel, language: str | None, threshold: float = 0.5,
                 hangover_ms: float = 350.0, asr_threads: int = 2,
                 on_cpu: Callable[[str, float], None] | None = None) -> None:
        self.asr, self.vad_model, self.language = asr, vad, language
        self.threshold, self.hangover_ms = threshold, hangover_ms
        count = on_cpu or (lambda kind, s: None)
        self.recognizer = FairRecognizer(lambda pcm: asr.transcribe(pcm, language), asr_threads,
                                         on_cpu=lambda s: count("asr", s))
        self._count = count
        self._vad_pool = ThreadPoolExecutor(1, thread_name_prefix="avatarchat-vad")

    @property
    def asr_running(self) -> int:
        return self.recognizer.running

    def warm_up(self) -> None:
        self.vad_model.warm_up()
        self.asr.warm_up()

    def transcribe(self, pcm: np.ndarray, owner: Owner, final: bool = True) -> asyncio.Future:
        """``owner``'s transcription of ``pcm``: queued fairly, superseded by the owner's next unless final."""
        return self.recognizer.submit(owner, pcm, final)

    async def detect(self, stream: VadStream, pcm: np.ndarray, owner: Owner) -> list[VadEvent]:
        def timed() -> tuple[list[VadEvent], float]:
            t0 = time.thread_time()
            events = stream.feed(pcm)
            return events, time.thread_time() - t0

        events, cpu = await asyncio.get_running_loop().run_in_executor(self._vad_pool, timed)
        owner.cpu_s += cpu
        self._count("vad", cpu)
        return events

    def listener(self, session_id: str, publish: Callable[[Event], None], on_speech: Callable[[], None],
                 on_final: Callable[[str], Awaitable[object]], client: str = "") -> Listener:
        return Listener(self, session_id, publish, on_speech, on_final, client)

    def close(self) -> None:
        self.recognizer.close()
        self._vad_pool.shutdown(wait=False, cancel_futures=True)


class Listener:
    def __init__(self, voice: VoiceInput, session_id: str, publish: Callable[[Event], None],
                 on_speech: Callable[[], None], on_final: Callable[[str], Awaitable[object]],
                 client: str = "") -> None:
        self.voice, self.session_id = voice, session_id
        self.owner = Owner(client or session_id)  # recognition is shared fairly per client address
        self._publish, self._on_speech, self._on_final = publish, on_speech, on_final
        self.stream = VadStream(voice.vad_model, voice.threshold, voice.hangover_ms)
        self.queue: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self._chunks: list[np.ndarray] = []
        self._base = 0  # absolute sample index of self._chunks[0][0]
        self._turn = 0
        self._start = 0  # first sample of the current turn
        self._guess: tuple[int, asyncio.Future] | None = None  # (end sample, speculative transcription)
        self._partial: asyncio.Task | None = None
        self._partial_at = 0
        self._final: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._runner = asyncio.create_task(self._run())

    # -- input ----------------------------------------------------------------------------------------------
    def push(self, pcm: np.ndarray) -> bool:
        """Queue one frame of int16 samples; False (frame dropped) when the queue is full."""
        try:
            self.queue.put_nowait(pcm)
            return True
        except asyncio.QueueFull:
            return False

    def end_turn(self) -> None:
        """Hold-to-talk released: end the current turn now, without waiting for the hangover."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    async def aclose(self) -> None:
        self.voice.recognizer.forget(self.owner)
        tasks = [self._runner, *self._tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the loop -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            pcm = await self.queue.get()
            if pcm is None:
                events = self._cut()
            else:
                self._chunks.append(pcm)
                events = await self.voice.detect(self.stream, pcm, self.owner)
            for ev in events:
                self._on_event(ev)
            if self.stream.speaking and self._end() - self._start > MAX_TURN_S * SAMPLE_RATE:
                for ev in self._cut():
                    self._on_event(ev)
            self._maybe_partial()
            if not self.stream.speaking:
                self._trim(self._end() - int(PRE_ROLL_S * SAMPLE_RATE))

    def _cut(self) -> list[VadEvent]:
        return self.stream.flush()

    def _on_event(self, ev: VadEvent) -> None:
        if ev.kind == "start":
            self._turn += 1
            self._start, self._partial_at, self._guess = ev.sample, ev.sample, None
            self._publish(VadState(session=self.session_id, state="speech"))
            self._on_speech()
        elif ev.kind == "pause":
            self._drop_guess()
            self._guess = (ev.sample, self.voice.transcribe(self._audio(ev.sample), self.owner, final=False))
        elif ev.kind == "resume":
            self._drop_guess()
        elif ev.kind == "end":
            guess = self._guess[1] if self._guess and self._guess[0] == ev.sample else None
            if guess is None:
                self._drop_guess()
            self._guess = None
            self._publish(VadState(session=self.session_id, state="silence"))
            self._final = self._spawn(self._finish(self._audio(ev.sample), guess, self._final))

    def _drop_guess(self) -> None:
        """The person went on speaking: a guess not yet started is not worth the CPU."""
        if self._guess is not None:
            self._guess[1].cancel()
            self._guess = None

    def _maybe_partial(self) -> None:
        due = self.stream.samples - self._partial_at >= PARTIAL_EVERY_S * SAMPLE_RATE
        idle = self._partial is None or self._partial.done()
        if self.stream.speaking and self._guess is None and due and idle and not self.voice.asr_running:
            self._partial_at = self.stream.samples
            self._partial = self._spawn(self._send_partial(self._turn, self._audio(self.stream.samples)))

    async def _send_partial(self, turn: int, audio: np.ndarray) -> None:
        try:
            result = await self.voice.transcribe(audio, self.owner, final=False)
        except (Superseded, asyncio.CancelledError):
            return
        if turn == self._turn and self.stream.speaking and result.text:
            self._publish(TranscriptEvent(session=self.session_id, text=result.text, final=False))

    async def _finish(self, audio: np.ndarray, guess: asyncio.Future | None, previous: asyncio.Task | None) -> None:
        final = self.voice.transcribe(audio, self.owner, final=True) if guess is None else None
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # finals in the order they were said
        try:
            try:
                result = await (guess if guess is not None else final)
            except (Superseded, asyncio.CancelledError):
                if guess is None or asyncio.current_task().cancelling():
                    raise
                result = await self.voice.transcribe(audio, self.owner, final=True)  # the guess gave way
        except TooFast:
            self._publish(ErrorEvent(session=self.session_id, code="speech_too_fast",
                                     message="You are speaking faster than I can follow; that last part was not "
                                             "heard, please say it again after a pause."))
            return
        except Exception:  # noqa: BLE001 - a failed recognition loses one turn, never the socket
            log.exception("speech recognition failed")
            self._publish(ErrorEvent(session=self.session_id, code="backend_error",
                                     message="Speech recognition failed; please say it again or type it."))
            return
        self._publish(TranscriptEvent(session=self.session_id, text=result.text, final=True))
        if result.text:
            await self._on_final(result.text)

    # -- audio buffer ---------------------------------------------------------------------------------------
    def _end(self) -> int:
        return self._base + sum(len(c) for c in self._chunks)

    def _audio(self, end: int) -> np.ndarray:
        """The current turn's samples (with pre-roll) up to ``end``."""
        whole = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        lo = max(0, self._start - int(PRE_ROLL_S * SAMPLE_RATE) - self._base)
        return whole[lo: max(lo, end - self._base)]

    def _trim(self, keep_from: int) -> None:
        while self._chunks and self._base + len(self._chunks[0]) <= keep_from:
            self._base += len(self._chunks.pop(0))

    def _spawn(self, work: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
