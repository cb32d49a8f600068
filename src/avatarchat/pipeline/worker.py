"""Runs a session's jobs in two stages, so sentence N+1 is in TTS while sentence N renders.

  jobs queue -> [TTS stage] -> rendered queue (bounded: 2) -> [render + encode stage] -> clip_ready

Both stages do their CPU work in a shared, bounded thread pool; the event loop only moves messages.
A cancelled reply's items are dropped at every step and its running render stops at the next frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from avatarchat.encode import encode_clip
from avatarchat.errors import AvatarChatError, Cancelled, redact
from avatarchat.events import ClipReady, ErrorEvent, ReplyPartial, ReplyText, SpeechDone
from avatarchat.llm.base import LLM
from avatarchat.metrics import Metrics
from avatarchat.pipeline.jobs import Reply, ReplyEnd, SpeechJob, new_id
from avatarchat.pipeline.sentences import SentenceSplitter
from avatarchat.pipeline.session import Session
from avatarchat.render.base import Avatar, Renderer, VoiceCalibrated
from avatarchat.tts.base import Speech
from avatarchat.tts.router import VoiceRouter

log = logging.getLogger(__name__)


class SpeechPipeline:
    def __init__(self, llm: LLM, tts: VoiceRouter, renderer: Renderer, avatar: Avatar, clips_dir: Path,
                 threads: int = 2, max_sentence_chars: int = 140, metrics: Metrics | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        """``secrets`` (API keys) are masked in every log line this pipeline writes."""
        self.metrics = metrics or Metrics()
        self.llm = llm
        self.tts = tts
        self.renderer = renderer
        self.avatar = avatar
        self.clips_dir = Path(clips_dir)
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="avatarchat-work")
        self.max_sentence_chars = max_sentence_chars
        self.secrets = tuple(secrets)
        self._uncalibratable: set[str | None] = set()
        self._calibrating: dict[str | None, asyncio.Lock] = {}

    # -- reply: LLM stream -> sentences -> jobs ----------------------------------------------------------------
    async def reply(self, session: Session, reply: Reply, message: str) -> str:
        """Stream the LLM's answer, queueing each sentence as soon as it is complete. Returns the full text."""
        session.remember("user", message)
        splitter = SentenceSplitter(self.max_sentence_chars)
        parts: list[str] = []
        spoken: list[str] = []
        first_token_ms: float | None = None
        try:
            async with aclosing(self.llm.stream(list(session.history))) as stream:
                async for piece in stream:
                    if first_token_ms is None:
                        first_token_ms = reply.ms_since_start()
                        self.metrics.llm_first_token.observe(first_token_ms / 1000)
                    parts.append(piece)
                    if reply.cancel.is_set():
                        break  # barge-in: a newer message took over; stop paying for this answer
                    done = splitter.feed(piece)
                    for sentence in done:
                        self._queue_sentence(session, reply, sentence)
                    if done:
                        spoken += done
                        session.publish(ReplyPartial(session=session.id, reply=reply.id, text=" ".join(spoken)))
            for sentence in splitter.flush():
                self._queue_sentence(session, reply, sentence)
        except AvatarChatError as exc:
            self._error(session, reply.id, exc, "The reply could not be written")
            reply.finished = True
            raise
        finally:
            if not reply.cancel.is_set():
                session.enqueue(ReplyEnd(reply.id))
        text = "".join(parts).strip()
        self.metrics.llm_total.observe(reply.ms_since_start() / 1000)
        session.remember("assistant", text)
        session.publish(ReplyText(session=session.id, reply=reply.id, text=text,
                                  timings_ms={"llm_first_token": first_token_ms or 0.0, "llm_total": reply.ms_since_start()}))
        return text

    def _queue_sentence(self, session: Session, reply: Reply, sentence: str) -> None:
        if reply.cancel.is_set():
            return
        voice = self.tts.choose(sentence, session.voice).id  # Korean text to an English voice gets a Korean one
        job = SpeechJob(id=new_id(), session=session.id, reply=reply.id, seq=reply.jobs, text=sentence, voice=voice)
        try:
            session.enqueue(job)
        except AvatarChatError as exc:
            self._error(session, reply.id, exc, f"Sentence {reply.jobs + 1} was not queued", f"{exc.public} "
                        f"Not spoken: {sentence[:80]!r}")
            return
        reply.jobs += 1

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
                log.info("calibrated mouth shapes for voice %s", voice or "(default)")
            except AvatarChatError as exc:
                self._uncalibratable.add(voice)  # do not pay for the failing words again on every sentence
                log.warning("could not calibrate voice %s (%s); using the default voice's shapes", voice,
                            redact(exc.message, self.secrets))

    # -- worker stages ----------------------------------------------------------------------------------------
    def start(self, session: Session) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._tts_stage(session), name=f"tts-{session.id}"),
            asyncio.create_task(self._render_stage(session), name=f"render-{session.id}"),
        ]

    def _live(self, session: Session, reply_id: str) -> Reply | None:
        r = session.replies.get(reply_id)
        return r if r is not None and not r.cancel.is_set() else None

    async def _tts_stage(self, session: Session) -> None:
        while True:
            item = await session.next_job()
            reply = self._live(session, item.reply)
            if reply is None:
                continue
            if isinstance(item, ReplyEnd):
                await session.rendered.put((item, None, 0.0))
                continue
            await self.ensure_calibrated(item.voice)
            t0 = time.perf_counter()
            try:
                speech = await self.tts.synthesize(item.text, item.voice)
            except AvatarChatError as exc:
                self._job_error(session, item, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the session's worker
                log.exception("TTS failed for job %s", item.id)
                self._job_error(session, item, AvatarChatError(f"Speech synthesis failed: {exc}",
                                                               public="Speech synthesis failed."))
                continue
            tts_s = time.perf_counter() - t0
            self.metrics.tts.observe(tts_s)
            await session.rendered.put((item, speech, tts_s * 1000))

    async def _render_stage(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item, speech, tts_ms = await session.rendered.get()
            reply = self._live(session, item.reply)
            if reply is None:
                continue
            if isinstance(item, ReplyEnd):
                reply.finished = True
                session.publish(SpeechDone(session=session.id, reply=reply.id, clips=reply.clips,
                                           timings_ms={"since_chat": reply.ms_since_start()}))
                session.forget_reply(reply.id)
                continue
            t0 = time.perf_counter()
            path = self.clips_dir / f"{item.id}.mp4"
            try:
                render_s = await loop.run_in_executor(self.pool, self._render_encode, path, speech, reply, item.voice)
            except Cancelled:
                if reply.cancelled_at is not None:  # barge-in: how long the running render took to stop
                    self.metrics.cancel_stop.observe(time.perf_counter() - reply.cancelled_at)
                continue
            except AvatarChatError as exc:
                self._job_error(session, item, exc)
                continue
            except Exception as exc:  # noqa: BLE001
                log.exception("render failed for job %s", item.id)
                self._job_error(session, item, AvatarChatError(f"Rendering failed: {exc}",
                                                               public="Rendering the clip failed."))
                continue
            if reply.cancel.is_set():
                path.unlink(missing_ok=True)
                continue
            total_s = time.perf_counter() - t0
            self.metrics.render.observe(render_s)
            self.metrics.encode.observe(total_s - render_s)
            if reply.clips == 0:
                self.metrics.first_clip.observe(reply.ms_since_start() / 1000)
            reply.clips += 1
            self.metrics.clips.inc()
            session.publish(ClipReady(
                session=session.id, reply=reply.id, job=item.id, seq=item.seq, url=f"/clips/{item.id}.mp4",
                text=item.text, duration_s=round(speech.duration_s, 3), voice=item.voice,
                timings_ms={"tts": round(tts_ms, 1), "render": round(render_s * 1000, 1),
                            "encode": round((total_s - render_s) * 1000, 1),
                            "render_encode": round(total_s * 1000, 1), "since_chat": reply.ms_since_start()},
            ))

    def _render_encode(self, path: Path, speech: Speech, reply: Reply, voice: str | None) -> float:
        """Render and encode in one worker thread, frame by frame; returns the seconds spent rendering."""
        timed = _Timed(self.renderer.render(self.avatar, speech, reply.cancel, voice=voice))
        encode_clip(path, timed, speech.pcm, speech.sample_rate, self.renderer.fps, cancel=reply.cancel)
        return timed.seconds

    def _error(self, session: Session, reply_id: str | None, exc: AvatarChatError, what: str,
               public: str | None = None) -> None:
        """Tell the page (our short text only) and the log (the detail, secrets masked)."""
        self.metrics.errors.labels(code=exc.code).inc()
        log.warning("session %s: %s: %s", session.id, what, redact(exc.message, self.secrets))
        message = public or f"{what}: {exc.public}"
        session.publish(ErrorEvent(session=session.id, reply=reply_id, code=exc.code, message=message))

    def _job_error(self, session: Session, job: SpeechJob, exc: AvatarChatError) -> None:
        self._error(session, job.reply, exc, f"Could not voice sentence {job.seq + 1}",
                    f"Could not voice {job.text[:80]!r}: {exc.public}")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _Timed:
    """Wraps a frame iterator and adds up the time spent producing frames (rendering, not encoding)."""

    def __init__(self, frames) -> None:
        self._frames = iter(frames)
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self._frames)
        finally:
            self.seconds += time.perf_counter() - t0
