"""The speech engine every session's lane shares, and the reply writer that feeds a lane.

``SpeechPipeline.reply`` streams the LLM, cuts the stream into sentences and submits each to the session's
lane as soon as it is complete. ``voice`` and ``render`` do the CPU work for the lanes: TTS backends run their
own threads or processes, renders go to a bounded render pool (worker processes by default, see
pipeline/render_pool.py); the event loop only moves messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import numpy as np

from avatarchat.data import Message, Speech
from avatarchat.errors import AvatarChatError, redact
from avatarchat.events import ReplyPartial, ReplyText, SpeechSkipped
from avatarchat.llm.base import LLM
from avatarchat.metrics import Metrics
from avatarchat.pipeline.failures import error_event
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.lane import RenderedClip
from avatarchat.pipeline.render_pool import RenderPool, ThreadRenderPool
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.schedule import DeadlineScheduler
from avatarchat.pipeline.sentences import BUSY_FIRST_SECONDS, FIRST_SECONDS, SentenceSplitter, ends_sentence
from avatarchat.pipeline.session import Session
from avatarchat.render.avatar import scaled
from avatarchat.render.base import Avatar, Renderer, VoiceCalibrated, frame_count
from avatarchat.tts.router import VoiceRouter
from avatarchat.tts.silence import shorten_tail

log = logging.getLogger(__name__)
WARM_UP_RATE = 16000
WARM_UP_SAMPLES = WARM_UP_RATE // 4  # a quarter second: a few frames
# Busy renders (``busy_max_side``): while other work waits for the CPU, a later clip whose render, at the pace
# renders go now, would end less than BUSY_MARGIN_S before the clip must play, sets the server busy for
# BUSY_HOLD_S; every clip that starts rendering meanwhile is made at the smaller size.
BUSY_MARGIN_S = 0.3
BUSY_HOLD_S = 3.0
# ... and so does a crowd at the CPU, before any clip is playing too: at least BUSY_CROWD times as many steps
# waiting for a slot as there are slots (two sessions never make more than two wait: each has one TTS and one
# render at most), the most urgent of them already past its deadline (a first clip's is its /chat).
BUSY_CROWD = 2
SCALED_KEPT = 8  # smaller copies of avatars kept (LRU)


class SpeechPipeline:
    def __init__(self, llm: LLM, tts: VoiceRouter, renderer: Renderer, avatar: Avatar, clips_dir: Path,
                 threads: int = 2, max_sentence_s: float = 8.0, metrics: Metrics | None = None,
                 secrets: tuple[str, ...] = (), pool: RenderPool | None = None, busy_max_side: int = 0) -> None:
        """``secrets`` (API keys) are masked in every log line this pipeline writes. ``pool``: where clips are
        rendered (default: ``threads`` threads of this process, with ``renderer``). ``busy_max_side``: while
        clips are at risk of being late (see ``_render_small``), they are rendered from the avatar scaled to
        this long side (0: never)."""
        self.metrics = metrics or Metrics()
        self.llm = llm
        self.tts = tts
        self.renderer = renderer
        self.avatar = avatar
        # The face of a job (its avatar id, its session); services plug the avatar library in.
        self.avatars: Callable[[str | None, str | None], Awaitable[Avatar]] = self._default_avatar
        self.clips_dir = Path(clips_dir)
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        self.pool: RenderPool = pool or ThreadRenderPool(renderer, threads)
        self.max_sentence_s = max_sentence_s
        self.secrets = tuple(secrets)
        self._uncalibratable: set[str | None] = set()
        self._calibrating: dict[str | None, asyncio.Lock] = {}
        self._calibrations: dict[str | None, dict[str, Speech]] = {}  # what a render process learns them from
        # Admission control: running means of one sentence's TTS time and its render + encode time, kept apart
        # because a sentence costs both (averaged together they counted half of it). None: not measured yet.
        self._stage_s: dict[str, float | None] = {"voice": None, "render": None}
        self._in_flight: dict[int, float] = {}  # renders running: id -> monotonic start
        self.busy_max_side = busy_max_side
        self._pace: float | None = None  # wall seconds a full-size render + encode takes per second of speech
        self._busy_until = 0.0  # monotonic: clips starting before this are rendered small
        self._scaled: OrderedDict[str, Avatar] = OrderedDict()
        # The slots the embedded lanes share (services plug it in): how much work waits, and how late.
        self.scheduler: DeadlineScheduler | None = None

    # -- reply: LLM stream -> sentences -> the session's lane -------------------------------------------------
    async def reply(self, session: Session, reply: Reply, speak: bool = True, short_first: bool = True,
                    growth: float | None = None, grow_if: Callable[[], bool] | None = None,
                    idle_growth: float | None = None,
                    history: list[Message] | None = None) -> str:
        """Stream the LLM's answer, submitting each sentence as soon as it is complete. Returns the full text.
        With ``speak`` False (the server is too busy) the text still arrives and the page is told why there
        is no voice. ``history``: what the LLM reads instead of the session's (a provisional answer's, whose
        user message is not in the session's history yet: then its answer is stored by whoever commits it)."""
        lane = session.lane
        assert lane is not None
        if not speak:
            reply.cancel_speech()
            session.publish(SpeechSkipped(session=session.id, reply=reply.id,
                                          message="The avatar is too busy to speak right now; here is the text."))
        # Clips of at most ~8 s of speech; the first one about 1 s, so the avatar starts speaking sooner. On a busy
        # server (``growth``, while ``grow_if()``) the later ones grow from there, so each is ready before the one
        # playing ends.
        splitter = SentenceSplitter(max_seconds=self.max_sentence_s, first_seconds=FIRST_SECONDS if short_first
                                    else None, growth=growth, grow_if=grow_if, idle_growth=idle_growth,
                                    busy_first_seconds=BUSY_FIRST_SECONDS)
        parts: list[str] = []
        spoken: list[str] = []
        first_token_ms: float | None = None
        try:
            async with aclosing(self.llm.stream(list(session.history if history is None else history))) as stream:
                async for piece in stream:
                    if first_token_ms is None:
                        first_token_ms = reply.ms_since_start()
                        self.metrics.llm_first_token.observe(first_token_ms / 1000)
                    parts.append(piece)
                    if reply.cancelled:
                        break  # barge-in: a newer message took over; stop paying for this answer
                    done = splitter.feed(piece)
                    for sentence in done:
                        self._submit(session, reply, sentence)
                    if done:
                        spoken += done
                        session.publish(ReplyPartial(session=session.id, reply=reply.id, text=" ".join(spoken)))
            for sentence in splitter.flush():
                self._submit(session, reply, sentence)
        except AvatarChatError as exc:
            self._error(session, reply, exc, "The reply could not be written")
            session.forget(reply.user_message)  # no answer: keep history alternating user / assistant
            raise
        finally:
            lane.end(reply)
        text = "".join(parts).strip()
        self.metrics.llm_total.observe(reply.ms_since_start() / 1000)
        # An interrupted reply's answer is what was heard (see Session.begin_reply); a provisional one's, stored
        # when it is committed.
        if not reply.cancelled and reply.user_message is not None:
            session.answer(reply, text)
        session.publish(ReplyText(session=session.id, reply=reply.id, text=text,
                                  timings_ms={"llm_first_token": first_token_ms or 0.0,
                                              "llm_total": reply.ms_since_start()}))
        return text

    def _submit(self, session: Session, reply: Reply, sentence: str) -> None:
        if reply.cancelled or reply.speech_skipped or session.lane is None:
            return
        if not any(ch.isalnum() for ch in sentence):  # "...", "!!!": nothing to say (Piper makes no audio)
            return
        voice = self.tts.choose(sentence, session.voice).id  # Korean text to an English voice gets a Korean one
        try:
            session.lane.submit(reply, sentence, voice, session.avatar)
        except AvatarChatError as exc:
            self._error(session, reply, exc, f"Sentence {reply.sentences} was not queued",
                        seq=reply.sentences - 1, public=f"{exc.public} Not spoken: {sentence[:80]!r}")

    def _error(self, session: Session, reply: Reply, exc: AvatarChatError, what: str, seq: int | None = None,
               public: str | None = None) -> None:
        """Tell the page (our short text only) and the log (the detail, secrets masked)."""
        session.publish(error_event(exc, session=session.id, reply=reply.id, seq=seq,
                                    message=public or f"{what}: {exc.public}", where=f"session {session.label}: {what}",
                                    metrics=self.metrics, secrets=self.secrets))

    # -- voice calibration -----------------------------------------------------------------------------------
    async def ensure_calibrated(self, voice: str | None) -> None:
        """Let the renderer learn this voice's mouth shapes (a few words, once per voice)."""
        r = self.renderer
        if not isinstance(r, VoiceCalibrated):
            return
        # One calibration per voice, however many sessions need it at once: the others wait for it.
        async with self._calibrating.setdefault(voice, asyncio.Lock()):
            if r.is_calibrated(voice) or voice in self._uncalibratable:
                return
            try:
                words = r.calibration_words(voice)
                samples = {shape: await self.tts.synthesize(word, voice, route=False) for shape, word in words.items()}
                await asyncio.to_thread(r.calibrate, voice, samples)
                self._calibrations[voice] = samples
                log.info("calibrated mouth shapes for voice %s", voice or "(default)")
            except AvatarChatError as exc:
                self._uncalibratable.add(voice)  # do not pay for the failing words again on every sentence
                log.warning("could not calibrate voice %s (%s); using the default voice's shapes", voice,
                            redact(exc.message, self.secrets))

    # -- the engine the lanes share --------------------------------------------------------------------------
    async def voice(self, job: SpeechJob, alone: bool = False) -> Speech:
        await self.ensure_calibrated(job.voice)
        t0 = time.perf_counter()
        speech = await self.tts.synthesize(job.text, job.voice, alone=alone)
        if not ends_sentence(job.text):
            speech = shorten_tail(speech)  # the sentence goes on in the next clip: a phrase break, not its end
        self._cost("voice", time.perf_counter() - t0)
        return speech

    def voice_needs_slot(self, job: SpeechJob) -> bool:
        return self.tts.needs_cpu(job.text, job.voice)

    async def render(self, job: SpeechJob, speech: Speech, reply: Reply) -> RenderedClip:
        path = self.clips_dir / f"{job.id}.mp4"
        t0 = time.perf_counter()
        avatar = await self.avatars(job.avatar, job.session)  # Redis mode: an upload may register here first
        avatar = avatar or self.avatar
        small = self._render_small(job.seq, speech.duration_s, reply)
        if small:
            avatar = await self._small(avatar)
            self.metrics.small_clips.inc()
        key = id(path)
        self._in_flight[key] = time.monotonic()
        try:
            render_s, encode_s = await self.pool.run(path, avatar, speech, job.voice, reply.stop_event,
                                                     self._calibrations)
        finally:
            self._in_flight.pop(key, None)
        spent = time.perf_counter() - t0
        self._cost("render", spent)
        if not small and speech.duration_s > 0:
            pace = spent / speech.duration_s
            self._pace = pace if self._pace is None else 0.7 * self._pace + 0.3 * pace
        n = frame_count(speech.duration_s, self.renderer.fps)
        return RenderedClip(path=path, url=f"/clips/{job.id}.mp4", duration_s=n / self.renderer.fps,
                            render_s=render_s, encode_s=encode_s, total_s=time.perf_counter() - t0)

    def _render_small(self, seq: int, duration_s: float, reply: Reply) -> bool:
        """Whether this clip is rendered from the smaller avatar. The server is busy when, with other work
        waiting for the CPU, a later clip of a reply that is playing, rendered full size at the pace renders
        take now, would be ready less than ``BUSY_MARGIN_S`` before it must play (a first clip is due at once
        by definition), or when a crowd of work waits for the CPU already late (``BUSY_CROWD``), as when 8
        sessions ask at once. One session alone never waits for a slot, so it is never made small (its chunks
        are cut to be ready in time). Then the picture gives way, not the speech: a clip that comes late stops
        the avatar mid-answer (video calls, too, lower the resolution when the CPU cannot keep up)."""
        if not self.busy_max_side:
            return False
        q = self.scheduler
        if q is None:
            return False
        now = time.monotonic()
        late = q.waiting > 0 and seq > 0 and reply.playing and self._pace is not None \
            and now + self._pace * duration_s + BUSY_MARGIN_S > reply.due(seq)
        crowd = q.waiting >= BUSY_CROWD * q.slots and q.overdue_s(now) > 0
        if late or crowd:
            if now >= self._busy_until:
                log.info("renders are falling behind (%s): clips at %d px for the next %.0f s",
                         "a clip would come late" if late else f"{q.waiting} steps wait for the CPU",
                         self.busy_max_side, BUSY_HOLD_S)
            self._busy_until = now + BUSY_HOLD_S
        return now < self._busy_until

    async def _small(self, avatar: Avatar) -> Avatar:
        """``avatar`` scaled to ``busy_max_side``: made once per avatar (in a thread: a video avatar's frames
        take tens of ms), kept for the last ``SCALED_KEPT`` avatars, as render workers keep theirs."""
        small = self._scaled.get(avatar.id)
        if small is None:
            small = await asyncio.to_thread(scaled, avatar, self.busy_max_side)
        self._scaled[avatar.id] = small
        self._scaled.move_to_end(avatar.id)
        while len(self._scaled) > SCALED_KEPT:
            self._scaled.popitem(last=False)
        return small

    async def _default_avatar(self, _avatar_id: str | None, _session_id: str | None) -> Avatar:
        return self.avatar

    def _cost(self, stage: str, seconds: float) -> None:
        old = self._stage_s[stage]
        self._stage_s[stage] = seconds if old is None else 0.8 * old + 0.2 * seconds

    @property
    def sentence_s(self) -> float:
        """Measured cost of one sentence: its TTS plus its render and encode (1 s until both are measured)."""
        voice, render = self._stage_s["voice"], self._stage_s["render"]
        return 1.0 if voice is None or render is None else voice + render

    def expected_wait_s(self, jobs_waiting: int) -> float:
        """How long a sentence queued now would wait for its clip: the work ahead of it spread over the
        render slots. A waiting sentence still needs its TTS and its render; a running render, about its
        render."""
        render = self._stage_s["render"] if self._stage_s["render"] is not None else self.sentence_s
        return (jobs_waiting * self.sentence_s + len(self._in_flight) * render) / self.pool.slots

    def health(self, stall_s: float) -> dict:
        """Renders in flight and the time since any of them produced a frame; ``stalled`` when renders are
        running but none has made progress for ``stall_s`` seconds."""
        idle_s = time.monotonic() - self.pool.last_frame()
        return {"renders_in_flight": len(self._in_flight), "seconds_since_last_frame": round(idle_s, 1),
                "seconds_per_sentence": round(self.sentence_s, 3),
                "stalled": bool(self._in_flight) and idle_s > stall_s}

    async def warm_up(self, voice: str | None) -> None:
        """Let the render pool render a short silence once (after ``voice`` is calibrated), so that no session's
        first clip pays for a cold render worker."""
        silence = Speech(pcm=np.zeros(WARM_UP_SAMPLES, np.int16), sample_rate=WARM_UP_RATE)
        await self.pool.warm_up(self.clips_dir / "warm-up.mp4", self.avatar, silence, voice, self._calibrations)

    async def aclose(self) -> None:
        await self.pool.aclose()
