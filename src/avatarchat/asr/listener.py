"""Voice input per socket: audio frames in, turn and transcript events out, finished turns handed on as text.

``VoiceInput`` is shared (the ASR backend, the VAD model and the threads they run in); each socket that sends
audio gets its own ``Listener`` with its own bounded frame queue, VAD state and audio buffer, so one session's
audio never reaches another's. The event loop only moves frames: VAD windows and ASR run in threads.

A turn: the VAD's ``start`` is reported at once (``on_speech``: the server cancels the avatar's speech there,
which is what makes voice barge-in fast); while the person speaks, a partial transcript at most every
``PARTIAL_EVERY_S`` when the ASR threads are idle; at the first silent window the whole turn is transcribed
speculatively, so when the hangover has passed the final text is usually ready; speech during the hangover
throws that guess away. How long the silence must last depends on that guess (``endpoint.py``): a finished
sentence ends the turn sooner than a trailing "and". A guess that is a finished sentence may start the answer
at once, held back until the turn ends with those words (``early.py``). Finals are delivered in order.
Recognition goes through the shared ``AsrBudget``, which takes turns between sockets.

While a turn goes on, ``on_progress`` hears how many seconds of it were speech (and since its onset), and
``words_so_far`` transcribes
it up to now (the socket's ``Interruption`` asks, to tell a real interruption from a backchannel, see
interruption.py). Every final, empty ones too, reaches ``on_final`` as a ``Heard`` (unless an early answer took
it). Hold-to-talk: ``hold`` (the button pressed) keeps the turn open across any pause, ``end_turn`` (released)
ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from avatarchat.asr.base import ASR, SAMPLE_RATE, Transcript
from avatarchat.asr.budget import AsrBudget, Superseded, TooMuchSpeech
from avatarchat.asr.early import Early, EarlyStarts, Outcome
from avatarchat.asr.endpoint import Ending, ending
from avatarchat.asr.interruption import Heard
from avatarchat.asr.vad import SileroModel, VadEvent, VadStream
from avatarchat.events import ErrorEvent, Event, TranscriptEvent, VadState

log = logging.getLogger(__name__)

PRE_ROLL_S = 0.25  # audio kept before the VAD's start: the first consonant often scores low
MAX_TURN_S = 28.0  # Whisper hears 30 s at a time: a longer turn is cut here
PARTIAL_EVERY_S = 1.0
QUEUE_FRAMES = 64  # frames waiting for the VAD (64 x 60 ms: about 4 s of audio)
EARLY_AFTER_MS = 150.0  # silence before an answer may start early: shorter pauses are mostly inside a sentence
HOLD = "hold"  # in the frame queue: hold-to-talk pressed (kept in order with the audio before it)


class VoiceInput:
    """What every listener shares. ``asr_threads`` bounds the CPU all sessions' recognition may take, shared
    round-robin between sockets (``AsrBudget``); ``on_cpu(stage, seconds)`` hears of every second spent."""

    def __init__(self, asr: ASR, vad: SileroModel, language: str | None, threshold: float = 0.5,
                 hangover_ms: float = 350.0, asr_threads: int = 2,
                 on_cpu: Callable[[str, float], None] | None = None, finished_hangover_ms: float | None = None,
                 unfinished_hangover_ms: float | None = None,
                 on_false_end: Callable[[], None] | None = None,
                 on_early: Callable[[Outcome, int], None] | None = None) -> None:
        self.asr, self.vad_model, self.language = asr, vad, language
        self.threshold, self.hangover_ms = threshold, hangover_ms
        self.hangovers_ms: dict[Ending, float] = {
            "unknown": hangover_ms,
            "finished": hangover_ms if finished_hangover_ms is None else finished_hangover_ms,
            "unfinished": hangover_ms if unfinished_hangover_ms is None else unfinished_hangover_ms}
        self._on_cpu = on_cpu
        self.on_false_end = on_false_end  # a turn ended sooner than the normal hangover, and the person went on
        self.on_early = on_early  # an early answer started, committed or discarded (with the clips it wasted)
        self.budget = AsrBudget(asr, language, asr_threads, on_spent=self._asr_spent)
        self._vad_pool = ThreadPoolExecutor(1, thread_name_prefix="avatarchat-vad")

    def warm_up(self) -> None:
        self.vad_model.warm_up()
        self.asr.warm_up()

    def _asr_spent(self, owner: object, seconds: float) -> None:
        if isinstance(owner, Listener):
            owner.asr_s += seconds
        if self._on_cpu is not None:
            self._on_cpu("asr", seconds)

    async def detect(self, listener: Listener, pcm: np.ndarray) -> list[VadEvent]:
        events, cpu = await asyncio.get_running_loop().run_in_executor(self._vad_pool, _timed_feed, listener.stream,
                                                                       pcm)
        listener.vad_s += cpu
        if self._on_cpu is not None:
            self._on_cpu("vad", cpu)
        return events

    def listener(self, session_id: str, publish: Callable[[Event], None], on_speech: Callable[[], None],
                 on_final: Callable[[Heard], Awaitable[object]],
                 on_progress: Callable[[float, float], None] | None = None,
                 start_early: Callable[[str], Early | None] | None = None,
                 language: Callable[[], str | None] | None = None) -> Listener:
        """``on_progress(speech_s, elapsed_s)``: the current turn's speech so far, and the time since its onset,
        at every frame while it goes on.
        ``start_early(text)``: answer a turn provisionally at its pause (see early.py); None: never.
        ``language``: the language its speech is heard in, asked at each recognition (default ``language``)."""
        listener = Listener(self, session_id, publish, on_speech, on_final, on_progress, start_early)
        if language is not None:
            self.budget.hears(listener, language)
        return listener

    def close(self) -> None:
        self.budget.close()
        self._vad_pool.shutdown(wait=False, cancel_futures=True)


def _timed_feed(stream: VadStream, pcm: np.ndarray) -> tuple[list[VadEvent], float]:
    """The VAD runs in this thread (onnxruntime with one intra-op thread), so the thread's CPU clock counts it."""
    t0 = time.thread_time()
    events = stream.feed(pcm)
    return events, time.thread_time() - t0


class Listener:
    """One socket's voice input. ``asr_s`` and ``vad_s``: seconds of recognition and detection it has cost
    (ASR: time holding an ASR thread, as CTranslate2 computes in threads of its own; VAD: CPU time)."""

    def __init__(self, voice: VoiceInput, session_id: str, publish: Callable[[Event], None],
                 on_speech: Callable[[], None], on_final: Callable[[Heard], Awaitable[object]],
                 on_progress: Callable[[float, float], None] | None = None,
                 start_early: Callable[[str], Early | None] | None = None) -> None:
        self.voice, self.session_id = voice, session_id
        self._publish, self._on_speech, self._on_final = publish, on_speech, on_final
        self._on_progress = on_progress
        # The stream's own hangover is the longest; the listener ends a turn sooner when its words allow.
        self.stream = VadStream(voice.vad_model, voice.threshold, max(voice.hangovers_ms.values()))
        self.queue: asyncio.Queue[np.ndarray | str | None] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self._chunks: list[np.ndarray] = []
        self._base = 0  # absolute sample index of self._chunks[0][0]
        self._turn = 0
        self._start = 0  # first sample of the current turn
        self._guess: tuple[int, asyncio.Future] | None = None  # (end sample, speculative transcription)
        self._partial: asyncio.Task | None = None
        self._partial_at = 0
        self._final: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.asr_s = 0.0
        self.vad_s = 0.0
        self.false_ends = 0
        self.early = EarlyStarts(start_early, self._early_outcome)
        self.last_end: tuple[Ending, int, int] | None = None  # the last turn: its ending, last sample, decided at
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

    def hold(self) -> None:
        """Hold-to-talk pressed: until ``end_turn``, no pause ends the turn (one message per press)."""
        try:
            self.queue.put_nowait(HOLD)
        except asyncio.QueueFull:
            self.stream.holding = True  # the frames queued before it are all this turn's anyway

    async def words_so_far(self) -> Heard:
        """The current turn transcribed up to now (speculative: a newer guess may supersede it), also sent to
        the page as a partial transcript."""
        turn, end, speech = self._turn, self.stream.samples, self.stream.voiced / SAMPLE_RATE
        self._partial_at = end
        result = await self._transcribe(self._audio(end), final=False)
        if turn == self._turn and self.stream.speaking and result.text:
            self._publish(TranscriptEvent(session=self.session_id, text=result.text, final=False))
        return Heard(result.text, speech, result.logprob, turn)

    async def aclose(self) -> None:
        tasks = [self._runner, *self._tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.early.drop()
        self.voice.budget.forget(self)
        e = self.early
        log.info("voice input of session %s closed: %.2f s of ASR, %.2f s of VAD CPU; early answers: %d started, "
                 "%d committed, %d discarded", self.session_id[:8], self.asr_s, self.vad_s, e.started, e.committed,
                 e.discarded)

    # -- the loop -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            pcm = await self.queue.get()
            if isinstance(pcm, str):
                self.stream.holding = True
                continue
            if pcm is None:
                self.stream.holding = False
                events = self._cut()
            else:
                self._chunks.append(pcm)
                events = await self.voice.detect(self, pcm)
            for ev in events:
                self._on_event(ev)
            if self.stream.speaking and self._end() - self._start > MAX_TURN_S * SAMPLE_RATE:
                for ev in self._cut():
                    self._on_event(ev)
            self._maybe_end()
            self._maybe_early()
            if self.stream.speaking and self._on_progress is not None:
                self._on_progress(self.stream.voiced / SAMPLE_RATE, (self.stream.samples - self._start) / SAMPLE_RATE)
            self._maybe_partial()
            if not self.stream.speaking:
                self._trim(self._end() - int(PRE_ROLL_S * SAMPLE_RATE))

    def _maybe_end(self) -> None:
        """End the turn once its silence is as long as its words ask for (see ``endpoint.py``)."""
        since = self.stream.silence_since
        if since is None or self.stream.holding:
            return
        if (self.stream.samples - since) * 1000 / SAMPLE_RATE >= self.voice.hangovers_ms[self._said_until(since)]:
            for ev in self._cut():
                self._on_event(ev)

    def _count_false_end(self, start: int) -> None:
        """Speech again within the normal hangover after a turn its words ended sooner: that end was false."""
        if self.last_end is None:
            return
        said, end, _ = self.last_end
        normal = self.voice.hangovers_ms["unknown"] * SAMPLE_RATE / 1000
        if self.voice.hangovers_ms[said] < self.voice.hangovers_ms["unknown"] and start - end < normal:
            self.false_ends += 1
            if self.voice.on_false_end is not None:
                self.voice.on_false_end()

    def _said_until(self, since: int) -> Ending:
        """How the words before the silence at ``since`` end, if their speculative transcript is ready."""
        if self._guess is not None and self._guess[0] == since and self._guess[1].done():
            future = self._guess[1]
            if not future.cancelled() and future.exception() is None:
                return ending(future.result().text)
        return "unknown"

    def _cut(self) -> list[VadEvent]:
        return self.stream.flush()

    def _on_event(self, ev: VadEvent) -> None:
        if ev.kind == "start":
            self._count_false_end(ev.sample)
            self._turn += 1
            self._drop_guess()
            self._start, self._partial_at = ev.sample, ev.sample
            self._publish(VadState(session=self.session_id, state="speech"))
            self._on_speech()
        elif ev.kind == "pause":
            self._guess = (ev.sample, self._transcribe(self._audio(ev.sample), final=False))
            if self.early.enabled:
                self._guess[1].add_done_callback(lambda _: self._maybe_early())
        elif ev.kind == "resume":
            self._drop_guess()
        elif ev.kind == "end":
            self.last_end = (self._said_until(ev.sample), ev.sample, self.stream.samples)
            guess = self._guess[1] if self._guess and self._guess[0] == ev.sample else None
            self._guess = None
            self._publish(VadState(session=self.session_id, state="silence"))
            speech_s = self.stream.voiced / SAMPLE_RATE
            self._final = self._spawn(self._finish(self._audio(ev.sample), guess, self._final,
                                                   self.early.take(ev.sample), speech_s, self._turn))

    def _maybe_early(self) -> None:
        """Once the pause's speculative transcript is ready and the silence has lasted ``EARLY_AFTER_MS``, its
        words may start the answer (early.py); at most once a pause."""
        since = self.stream.silence_since
        if not self.early.enabled or since is None or self.stream.holding or self._guess is None \
                or self._guess[0] != since or not self._guess[1].done():
            return
        if self.early.considered == since or (self.stream.samples - since) * 1000 / SAMPLE_RATE < EARLY_AFTER_MS:
            return
        future = self._guess[1]
        if not future.cancelled() and future.exception() is None:
            self.early.consider(since, future.result().text)

    def _early_outcome(self, outcome: Outcome, clips: int) -> None:
        if self.voice.on_early is not None:
            self.voice.on_early(outcome, clips)

    def _drop_guess(self) -> None:
        self.early.drop()  # speech again (or a new turn): an answer started at the pause is not the turn's
        if self._guess is not None:
            self.voice.budget.withdraw(self._guess[1])
            self._guess = None

    def _maybe_partial(self) -> None:
        due = self.stream.samples - self._partial_at >= PARTIAL_EVERY_S * SAMPLE_RATE
        idle = self._partial is None or self._partial.done()
        if self.stream.speaking and self._guess is None and due and idle and not self.voice.budget.running:
            self._partial_at = self.stream.samples
            self._partial = self._spawn(self._send_partial(self._turn, self._audio(self.stream.samples)))

    def _transcribe(self, audio: np.ndarray, final: bool) -> asyncio.Future:
        future = self.voice.budget.transcribe(self, audio, final)
        future.add_done_callback(_retrieved)
        return future

    async def _send_partial(self, turn: int, audio: np.ndarray) -> None:
        try:
            result = await self._transcribe(audio, final=False)
        except Superseded:
            return
        if turn == self._turn and self.stream.speaking and result.text:
            self._publish(TranscriptEvent(session=self.session_id, text=result.text, final=False))

    async def _finish(self, audio: np.ndarray, guess: asyncio.Future | None, previous: asyncio.Task | None,
                      early: Early | None = None, speech_s: float = 0.0, turn: int = 0) -> None:
        try:
            result = await self._recognise(audio, guess, previous)
        except BaseException:
            if early is not None:
                self.early.discard(early)
            raise
        if result is not None:
            self._publish(TranscriptEvent(session=self.session_id, text=result.text, final=True))
        if early is not None and await self.early.settle(early, result.text if result is not None else None):
            return  # answered at the pause: its events have just gone out
        if result is not None:
            await self._on_final(Heard(result.text, speech_s, result.logprob, turn))

    async def _recognise(self, audio: np.ndarray, guess: asyncio.Future | None,
                         previous: asyncio.Task | None) -> Transcript | None:
        """The turn's final transcript, after the previous turn's; None (the page is told) when it failed."""
        if guess is not None:
            self.voice.budget.promote(guess)  # not started yet: it waits with the finals now
        else:
            guess = self._transcribe(audio, final=True)  # queued now, so its place in the round is kept
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # finals in the order they were said
        try:
            try:
                result = await guess
            except Superseded:
                result = await self._transcribe(audio, final=True)
        except TooMuchSpeech:
            self._publish(ErrorEvent(session=self.session_id, code="rate_limited",
                                     message="You spoke faster than I could follow; please say that again."))
            return None
        except Exception:  # noqa: BLE001 - a failed recognition loses one turn, never the socket
            log.exception("speech recognition failed")
            self._publish(ErrorEvent(session=self.session_id, code="backend_error",
                                     message="Speech recognition failed; please say it again or type it."))
            return None
        return result

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


def _retrieved(future: asyncio.Future) -> None:
    """A speculative result nobody awaited any more (the person went on speaking) is dropped without a warning."""
    if not future.cancelled():
        future.exception()
