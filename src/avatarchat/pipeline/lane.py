"""A session's speech lane: sentences in, clips out, in order, cancellable at any point.

  submit() -> jobs (bounded count) -> [TTS stage] -> voiced (2) -> [render + encode stage] -> clip_ready

The lane owns the job queue, the TTS -> render queue, the table of replies still to be heard and the two
stage tasks; the shared ``SpeechEngine`` does the CPU work (TTS, rendering, encoding) in worker threads. A
lane that hands jobs to other processes only has to offer the same methods: the web layer calls ``submit``,
``end``, ``cancel_all``, ``report``, ``state`` and ``aclose`` and nothing else.

A start-up buffer on a contended server (``start_buffer_s``): a reply's first clip is short (~1 s) so that it is
ready soon, but while other work waits for the CPU the clip after it takes longer to make than the first one
takes to play, and the avatar would stop after its first words. So when work is waiting for a slot as a reply's
first clip is ready, its ``clip_ready`` is held back until the next clip is ready too, the reply has no more, or
``start_buffer_s`` have passed since the reply's ``/chat``, whichever comes first: the page starts a little later
with more speech in hand, as a video player buffers before it starts. Nothing is held on a server with nothing
waiting, and a first clip ready later than that is announced at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from avatarchat.data import Speech
from avatarchat.errors import AvatarChatError, Cancelled, QueueFull
from avatarchat.events import ClipReady, Event, SpeechCancelled, SpeechDone
from avatarchat.pipeline.cancel import ReplyCancelled, unless_cancelled
from avatarchat.pipeline.contract import Lane, RenderedClip, SpeechEngine
from avatarchat.pipeline.failures import as_failure, error_event
from avatarchat.pipeline.jobs import ReplyEnd, SpeechJob
from avatarchat.pipeline.reply import LATE_S, Reply, new_id
from avatarchat.pipeline.schedule import DeadlineScheduler, Lease

__all__ = ["Lane", "RenderedClip", "SpeechEngine", "SpeechLane", "Voiced"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Voiced:
    """A sentence with its speech, waiting for the render stage; ``lease`` is the scheduler slot its TTS
    held, passed on to its render (None: the render stage asks for one)."""

    job: SpeechJob
    speech: Speech
    tts_ms: float
    lease: Lease | None = None


class SpeechLane:
    def __init__(self, session_id: str, engine: SpeechEngine, publish: Callable[[Event], None],
                 queue_size: int, scheduler: DeadlineScheduler | None = None, start_buffer_s: float = 0.0) -> None:
        """``scheduler``, shared by every lane, orders their CPU work by deadline; without one each lane's
        work starts as soon as its stage reaches it. ``start_buffer_s``: while the CPU is contended, a first clip
        may be held back until this long after its reply's ``/chat`` (see the module docstring; 0: never)."""
        self.session_id = session_id
        self._scheduler = scheduler
        self._buffer_s = start_buffer_s
        self._buffering: dict[str, _Buffered] = {}  # reply id -> its first clip, held back (the start-up buffer)
        self._engine = engine
        self._publish = publish
        self._limit = queue_size
        self._waiting = 0
        # Unbounded underneath so a reply's end marker always fits; speech jobs are bounded by ``_limit``.
        self._jobs: asyncio.Queue[SpeechJob | ReplyEnd] = asyncio.Queue()
        self._voiced: asyncio.Queue[Voiced | ReplyEnd] = asyncio.Queue(maxsize=2)
        self._replies: dict[str, Reply] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._render_idle = False  # the render stage is waiting for its next item

    # -- the web layer's side --------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervise(self._tts_stage), name=f"tts-{self.session_id[:6]}"),
                       asyncio.create_task(self._supervise(self._render_stage), name=f"render-{self.session_id[:6]}")]

    async def ready(self) -> None:
        return None

    def begin(self, reply: Reply) -> None:
        """Track ``reply`` (and forget the ones that are over; a held one is not over: see provisional.py)."""
        self._replies = {rid: r for rid, r in self._replies.items()
                         if r.speaking() or (r.held and not r.cancelled)}
        self._replies[reply.id] = reply

    @property
    def waiting(self) -> int:
        return self._waiting

    def has_room(self) -> bool:
        return self._waiting < self._limit

    def submit(self, reply: Reply, text: str, voice: str, avatar: str | None = None) -> int:
        """Queue one sentence of ``reply``; returns its seq. A full lane raises ``QueueFull`` (the seq is
        then already taken and marked failed, so the page skips it instead of waiting)."""
        seq = reply.add_sentence(text)
        if not self.has_room():
            reply.fail(seq)
            raise QueueFull(f"{self._limit} sentences are already waiting to be spoken; this one was not queued.")
        self._waiting += 1
        self._jobs.put_nowait(SpeechJob(id=new_id(), reply=reply.id, seq=seq, text=text, voice=voice,
                                        avatar=avatar, session=self.session_id))
        return seq

    def end(self, reply: Reply) -> None:
        """No more sentences for ``reply``: ``speech_done`` follows its last clip."""
        reply.finish_writing()
        if not reply.cancelled:
            self._jobs.put_nowait(ReplyEnd(reply.id))

    def speaking(self) -> list[Reply]:
        return [r for r in self._replies.values() if r.speaking()]

    def cancel_all(self) -> list[Reply]:
        """Barge-in: cancel every reply still queued, rendering or playing; the page is told to fade out."""
        cancelled = [r for r in self.speaking() if r.cancel()]
        if cancelled:
            gone = {r.id for r in cancelled}
            self._drop(self._jobs, gone)
            self._drop(self._voiced, gone)
            for rid in gone:
                self._release(rid)  # cancelled: a held first clip is deleted, never announced
            for r in cancelled:
                self._publish(SpeechCancelled(session=self.session_id, reply=r.id))
        return cancelled

    def report(self, reply_id: str, seq: int, ended: bool) -> None:
        reply = self._replies.get(reply_id)
        if reply is not None:
            reply.played(seq, ended)

    def state(self) -> list[dict]:
        """Replies still to be heard, for a page that (re)connects."""
        return [r.state() for r in self.speaking()]

    async def aclose(self) -> None:
        for r in self._replies.values():
            r.cancel()
        for rid in list(self._buffering):
            self._release(rid)  # every reply is cancelled by now: held clips are deleted
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._voiced.empty():  # slots passed on to renders that will never run
            _free_slot(self._voiced.get_nowait())

    # -- the stages ----------------------------------------------------------------------------------------
    def _drop(self, queue: asyncio.Queue, replies: set[str]) -> None:
        kept = []
        while not queue.empty():
            item = queue.get_nowait()
            if _reply_of(item) not in replies:
                kept.append(item)
            elif isinstance(item, SpeechJob):
                self._waiting -= 1
            else:
                _free_slot(item)
        for item in kept:
            queue.put_nowait(item)

    def _live(self, reply_id: str) -> Reply | None:
        r = self._replies.get(reply_id)
        return r if r is not None and not r.cancelled else None

    async def _supervise(self, stage: Callable[[], Awaitable[None]]) -> None:
        """A stage that dies of a bug fails the replies in flight (the page is told) and starts again, so the
        session never stays 'busy' with nothing running."""
        while True:
            try:
                await stage()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("session %s: speech stage %s failed", self.session_id[:6], stage.__name__)
                for r in self.cancel_all():
                    self._error(r, None, AvatarChatError("stage crashed", public="Speech failed; please try again."))
                await asyncio.sleep(0.1)

    async def _tts_stage(self) -> None:
        while True:
            item = await self._jobs.get()
            if isinstance(item, SpeechJob):
                self._waiting -= 1
            reply = self._live(item.reply)
            if reply is None:
                continue
            if isinstance(item, ReplyEnd):
                await self._voiced.put(item)
                continue
            try:
                speech, lease, tts_s = await self._voice(reply, item)
            except ReplyCancelled:
                continue
            except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the lane
                self._job_failed(reply, item, exc, "Speech synthesis failed.")
                continue
            self._engine.metrics.tts.observe(tts_s)
            reply.voiced(item.seq, speech.duration_s)
            lease = self._pass_on(lease, reply.due(item.seq))
            await self._voiced.put(Voiced(item, speech, tts_s * 1000, lease))

    async def _voice(self, reply: Reply, job: SpeechJob) -> tuple[Speech, Lease | None, float]:
        """Voice ``job`` in a scheduler slot; the slot is returned still held (``ReplyCancelled`` on
        barge-in, with the slot freed). A cloud voice takes no slot: it waits on the network, not the CPU.
        The seconds returned are the synthesis alone, not the wait for the slot."""
        lease = await self._acquire(reply, job.seq) if self._engine.voice_needs_slot(job) else None
        # Nothing else holds or wants a slot: no render, no other TTS. The TTS may then use the idle cores too
        # (it is usually a reply's first chunk, the one the person is waiting for).
        alone = lease is not None and self._scheduler is not None and self._scheduler.running == 1 \
            and not self._scheduler.waiting
        try:
            t0 = time.perf_counter()
            speech = await unless_cancelled(reply, self._engine.voice(job, alone=alone))
            return speech, lease, time.perf_counter() - t0
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    def _pass_on(self, lease: Lease | None, due: float) -> Lease | None:
        """Keep a just-voiced sentence's slot for its own render when the render stage is idle (it takes the
        sentence at once) and no waiting work is due earlier; otherwise free the slot now. Freed, it would go
        to the next waiter, often another session's TTS, before the render stage had even asked for one."""
        if lease is None or self._scheduler is None:
            return None
        if self._render_idle and self._voiced.empty() and self._scheduler.may_pass_on(due):
            return lease
        lease.release()
        return None

    async def _render_stage(self) -> None:
        while True:
            self._render_idle = True
            try:
                item = await self._voiced.get()
            finally:
                self._render_idle = False
            reply = self._live(_reply_of(item))
            if reply is None:
                _free_slot(item)
                continue
            if isinstance(item, ReplyEnd):
                self._release(reply.id)  # a one-clip reply: nothing more to wait for
                reply.finish_rendering()
                self._publish(SpeechDone(session=self.session_id, reply=reply.id, clips=reply.clips,
                                         sentences=reply.sentences, timings_ms={"since_chat": reply.ms_since_start()}))
                continue
            clip = await self._render(reply, item)
            if clip is None:
                continue
            if reply.cancelled:
                clip.path.unlink(missing_ok=True)
                continue
            self._announce(reply, item, clip)

    async def _render(self, reply: Reply, item: Voiced) -> RenderedClip | None:
        """Render and encode in a scheduler slot (the one passed on from its TTS, or a new one); None when
        the reply was cancelled or the render failed (the page is told)."""
        lease = item.lease
        try:
            if lease is None:
                lease = await self._acquire(reply, item.job.seq)
            return await self._engine.render(item.job, item.speech, reply)
        except ReplyCancelled:
            return None
        except Cancelled:
            if reply.cancelled_at is not None:  # barge-in: how long the running render took to stop
                self._engine.metrics.cancel_stop.observe(time.perf_counter() - reply.cancelled_at)
            return None
        except Exception as exc:  # noqa: BLE001
            self._job_failed(reply, item.job, exc, "Rendering the clip failed.")
            return None
        finally:
            if lease is not None:
                lease.release()

    def _announce(self, reply: Reply, item: Voiced, clip: RenderedClip) -> None:
        """Tell the page the clip is ready, or hold a reply's first clip back (the start-up buffer, see the module
        docstring)."""
        if reply.id in self._buffering:
            self._release(reply.id)  # the clip after the held one is ready: both go now, in order
        elif reply.clips == 0 and self._scheduler is not None and self._scheduler.waiting > 0 \
                and (left := reply.started_at + self._buffer_s - time.monotonic()) > 0:
            timer = asyncio.get_running_loop().call_later(left, self._release, reply.id)
            self._buffering[reply.id] = _Buffered(item, clip, time.perf_counter(), timer)
            return
        self._publish_clip(reply, item, clip)

    def _release(self, reply_id: str) -> None:
        """End the start-up buffer of ``reply_id``: its held first clip, if there is one, is announced, or deleted
        when the reply was cancelled meanwhile."""
        first = self._buffering.pop(reply_id, None)
        if first is None:
            return
        first.timer.cancel()
        reply = self._live(reply_id)
        if reply is None:
            first.clip.path.unlink(missing_ok=True)
            return
        self._publish_clip(reply, first.item, first.clip, buffered_ms=(time.perf_counter() - first.since) * 1000)

    def _publish_clip(self, reply: Reply, item: Voiced, clip: RenderedClip, buffered_ms: float = 0.0) -> None:
        m = self._engine.metrics
        m.render.observe(clip.render_s)
        m.encode.observe(clip.encode_s)
        if reply.clips == 0:
            m.first_clip.observe(reply.ms_since_start() / 1000)
        m.clips.inc()
        job = item.job
        event = ClipReady(
            session=self.session_id, reply=reply.id, job=job.id, seq=job.seq, url=clip.url, text=job.text,
            duration_s=round(clip.duration_s, 3), voice=job.voice,
            timings_ms={"tts": round(item.tts_ms, 1), "render": round(clip.render_s * 1000, 1),
                        "encode": round(clip.encode_s * 1000, 1),
                        "render_encode": round(clip.total_s * 1000, 1), "buffered": round(buffered_ms, 1),
                        "since_chat": reply.ms_since_start()})
        late_s = reply.announce(job.seq, event.wire(), clip.duration_s)
        if late_s > LATE_S:
            m.late_clips.observe(late_s)
        self._publish(event)

    async def _acquire(self, reply: Reply, seq: int) -> Lease | None:
        """The shared scheduler's slot for sentence ``seq`` (``ReplyCancelled`` on barge-in); None without a
        scheduler. The caller releases it."""
        if self._scheduler is None:
            return None
        return await unless_cancelled(reply, self._scheduler.acquire(reply.due(seq)))

    def _job_failed(self, reply: Reply, job: SpeechJob, exc: BaseException, fallback: str) -> None:
        reply.fail(job.seq)
        self._error(reply, job, as_failure(exc, fallback, f"session {self.session_id[:6]}: job {job.id}"))

    def _error(self, reply: Reply, job: SpeechJob | None, exc: AvatarChatError) -> None:
        what = f"sentence {job.seq + 1} of reply {reply.id[:8]}" if job else f"reply {reply.id[:8]}"
        self._publish(error_event(exc, session=self.session_id, reply=reply.id, job=job,
                                  where=f"session {self.session_id[:6]}: {what} failed",
                                  metrics=self._engine.metrics, secrets=self._engine.secrets))

@dataclass(frozen=True)
class _Buffered:
    """A first clip held back (the start-up buffer): what its ``clip_ready`` needs, when it was ready, and the
    timer that announces it."""

    item: Voiced
    clip: RenderedClip
    since: float
    timer: asyncio.TimerHandle


def _reply_of(item: SpeechJob | ReplyEnd | Voiced) -> str:
    return item.job.reply if isinstance(item, Voiced) else item.reply


def _free_slot(item: SpeechJob | ReplyEnd | Voiced) -> None:
    """Free the slot a voiced sentence carries for a render that will not run."""
    if isinstance(item, Voiced) and item.lease is not None:
        item.lease.release()
