"""The composition root: every long-lived object of a running avatarchat, built once from settings.

``start_services`` makes the backends (or takes the ones given, as tests do), registers the avatar, warms
everything up and wires the shared speech engine to a session manager; ``Services.aclose`` takes it all down
in the reverse order, with bounded waits. The web app and the CLI both start from here, so they run the same
code paths.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avatarchat.asr import ASR, asr_language, create_asr
from avatarchat.asr.listener import VoiceInput
from avatarchat.asr.vad import SileroModel
from avatarchat.avatars.intake import Limits
from avatarchat.avatars.library import AvatarLibrary, Quotas
from avatarchat.distributed.avatar_store import RedisAvatarStore
from avatarchat.distributed.backplane import Backplane
from avatarchat.distributed.redis_lane import RedisLane
from avatarchat.distributed.worker import SpeechWorker
from avatarchat.llm import LLM, create_llm
from avatarchat.metrics import Metrics
from avatarchat.pipeline.clips import ClipStore
from avatarchat.pipeline.lane import Lane, SpeechLane
from avatarchat.pipeline.render_pool import ProcessRenderPool, RenderPool, ThreadRenderPool
from avatarchat.pipeline.schedule import DeadlineScheduler
from avatarchat.pipeline.session import Session, SessionManager, fair_backlog
from avatarchat.pipeline.speech import SpeechPipeline
from avatarchat.render import Avatar, Renderer, create_renderer
from avatarchat.render.idle import build_idle_clip
from avatarchat.runtime import single_threaded_natives
from avatarchat.settings import Settings, bundled_gallery
from avatarchat.tts import TTS, VoiceRouter, as_router, create_tts

log = logging.getLogger(__name__)
SHUTDOWN_WAIT_S = 5.0
HOUSEKEEPING_EVERY_S = 60.0


@dataclass
class Services:
    settings: Settings
    llm: LLM
    tts: VoiceRouter
    renderer: Renderer
    avatar: Avatar
    idle_clip: Path
    pipeline: SpeechPipeline
    sessions: SessionManager
    metrics: Metrics
    clips: ClipStore
    avatars: AvatarLibrary
    voice: VoiceInput | None = None  # microphone input (ASR + VAD); None when voice_enabled is off
    backplane: Backplane | None = None  # Redis mode
    draining: bool = False  # SIGTERM: new messages are refused while in-flight requests end
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _warming: list[asyncio.Task] = field(default_factory=list)  # start-up work still loading in the background

    @property
    def warming(self) -> bool:
        """Whether start-up work still runs in the background (the ASR model, the default voices' models): the
        server answers meanwhile, but that work shares its CPU (a benchmark started beside it measured it)."""
        return any(not t.done() for t in self._warming)

    def drain(self) -> None:
        """SIGTERM (``avatarchat serve``): refuse new messages (503 ``shutting_down``) and, embedded, cancel every
        reply still queued or rendering, so the in-flight ``/chat`` returns its text at once and no more clips
        are made for pages that are about to lose the server. (Redis mode: the workers speak, not this node;
        its replies go on and ``aclose`` cancels only those it was still writing.)"""
        if self.draining:
            return
        self.draining = True
        if self.backplane is not None:
            return
        stopped = 0
        for session in list(self.sessions.sessions.values()):
            if session.lane is not None:
                stopped += len(session.interrupt())
        log.info("shutting down: new messages refused, %d replies stopped", stopped)

    async def drain_and_flush(self, timeout_s: float = 1.0) -> None:
        """``drain``, then wait (at most ``timeout_s``) until every socket has sent what it was given: uvicorn
        drops its WebSockets as it begins to shut down, and a page that never got ``speech_cancelled`` was left
        waiting for clips that would not come (seen in CI, where the sockets were dropped first)."""
        self.drain()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline and any(
                not box.queue.empty() for session in list(self.sessions.sessions.values()) for box in session.outboxes):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # the last event taken from its queue is being written

    def start_worker(self) -> SpeechWorker:
        """A speech worker in this process, claiming jobs from Redis (``avatarchat worker``, or ``serve
        --with-worker``); it runs until ``aclose``."""
        assert self.backplane is not None, "a speech worker needs AVATARCHAT_REDIS_URL"
        st = self.settings
        worker = SpeechWorker(self.backplane.redis, self.backplane.keys, self.pipeline,
                              visibility_s=st.redis_visibility_s, clip_ttl_s=st.clip_ttl_s,
                              clips_in_redis=st.redis_clips == "redis", loops=st.render_threads,
                              job_timeout_s=st.redis_job_timeout_s)
        self._tasks.append(asyncio.create_task(worker.run(), name="speech-worker"))
        log.info("speech worker %s claiming jobs (%d at a time)", worker.name, st.render_threads)
        return worker

    async def speech_backlog(self, client: str | None = None) -> tuple[int, float]:
        """Sentences waiting to be spoken and how long a new one would wait for its clip (admission
        control): this process's queue and render threads embedded, the whole cluster's in Redis mode.
        With ``client`` (embedded), the sentences that count are those a fair share between clients would put
        ahead of its new one: all of its own, and of each other client's at most one more than that, so one
        client's backlog does not turn everyone else's replies into text."""
        if self.backplane is not None:
            return await self.backplane.admission.backlog()
        if client is None:
            waiting = self.sessions.jobs_waiting()
        else:
            waiting = fair_backlog(self.sessions.jobs_waiting_by_owner(), client)
        return waiting, self.pipeline.expected_wait_s(waiting)

    def client_backlog(self, client: str) -> int:
        """Sentences the sessions of ``client`` have waiting on this node."""
        return self.sessions.jobs_waiting_by_owner().get(client, 0)

    async def aclose(self) -> None:
        """Cancel every reply, wait at most ``SHUTDOWN_WAIT_S`` for the lanes, leave no half-written clip."""
        for t in self._tasks:
            t.cancel()
        try:
            await asyncio.wait_for(self.sessions.close(), SHUTDOWN_WAIT_S)
        except TimeoutError:
            log.warning("shutdown: sessions did not close within %.0f s", SHUTDOWN_WAIT_S)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pipeline.aclose()
        if self.voice is not None:
            self.voice.close()
        await self.avatars.aclose()
        await asyncio.to_thread(self.clips.remove_partials)
        if self.backplane is not None:
            await self.backplane.aclose()
        try:
            await self.llm.aclose()
        finally:
            try:
                await self.tts.aclose()
            finally:
                await self.renderer.aclose()


async def start_services(settings: Settings, *, llm: LLM | None = None, tts: TTS | None = None,
                         renderer: Renderer | None = None, asr: ASR | None = None,
                         housekeeping: bool = True, preload: bool = True, renders: bool = True) -> Services:
    """``renders`` False: this process makes no clips (a Redis-mode web node without a worker), so no render
    processes are started for it."""
    single_threaded_natives()  # before any worker thread enters numpy (see runtime.py)
    the_llm = llm or create_llm(settings)
    the_tts = as_router(tts) if tts is not None else create_tts(settings)
    the_renderer = renderer or create_renderer(settings)
    # Render processes build their renderer from settings, so an injected renderer (tests) renders in threads.
    processes = settings.render_processes and renderer is None and renders
    pool: RenderPool = ProcessRenderPool(settings, settings.render_threads) if processes \
        else ThreadRenderPool(the_renderer, settings.render_threads)
    starting = asyncio.create_task(pool.start()) if isinstance(pool, ProcessRenderPool) else None
    try:
        log.info("registering avatar %s", settings.resolved_avatar())
        avatar = await asyncio.to_thread(the_renderer.register, settings.resolved_avatar())
        idle = await asyncio.to_thread(build_idle_clip, the_renderer, avatar, settings.data_dir / "avatars")
        for backend in (the_renderer, the_tts, the_llm):
            await asyncio.to_thread(backend.warm_up)  # e.g. the faq backend embeds its questions once
        if starting is not None:
            await starting  # spawned first, so the workers' imports overlap the work above
    except BaseException:
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await pool.aclose()
        raise
    metrics = Metrics()
    clips = ClipStore(settings.data_dir / "clips", settings.clip_ttl_s)
    pipeline = SpeechPipeline(the_llm, the_tts, the_renderer, avatar, clips.directory,
                              threads=settings.render_threads, metrics=metrics, secrets=settings.secrets(), pool=pool,
                              # A Redis worker does not know when a clip must play: it never renders small.
                              busy_max_side=settings.busy_max_side if settings.busy_max_side < settings.render_max_side
                              and not settings.redis_url else 0)

    backplane = Backplane.connect(settings.redis_url, settings.session_idle_s, settings.history_turns,
                                  timeout_s=settings.redis_timeout_s) if settings.redis_url else None
    make_lane = redis_lanes(settings, backplane, metrics) if backplane else _embedded_lanes(settings, pipeline)
    sessions = SessionManager(settings.max_sessions, settings.session_queue_size, settings.history_turns,
                              make_lane, history_token_budget=settings.history_token_budget,
                              store=backplane.sessions if backplane else None,
                              per_client=settings.max_sessions_per_client)
    metrics.watch_queues(sessions.queue_depths)
    avatars = _avatar_library(settings, the_renderer, avatar, idle, metrics, backplane)
    if settings.avatar_bundled_gallery:
        await avatars.load_gallery(bundled_gallery(), lambda v: the_tts.resolve(v).id, strict=False)
    if settings.avatar_gallery_dir is not None:
        await avatars.load_gallery(settings.avatar_gallery_dir, lambda v: the_tts.resolve(v).id)
    pipeline.avatars = avatars.face  # each clip renders its session's chosen face
    await pipeline.ensure_calibrated(the_tts.default_voice)
    await pipeline.warm_up(the_tts.default_voice)
    voice = _voice_input(settings, asr, metrics)
    services = Services(settings, the_llm, the_tts, the_renderer, avatar, idle, pipeline, sessions, metrics, clips,
                        avatars, voice, backplane)
    if voice is not None:  # the ASR model loads in the background: the server answers typed messages meanwhile
        services._warming.append(asyncio.create_task(asyncio.to_thread(voice.warm_up)))
    if preload:  # so do the default voices' slow models (Kokoro's, the Korean default; rewritten on a fresh cache)
        services._warming.append(asyncio.create_task(_get_voices_ready(the_tts, pipeline)))
    services._tasks.extend(services._warming)
    if housekeeping:
        services._tasks.append(asyncio.create_task(_housekeeping(services)))
    log.info("avatarchat ready: llm=%s voice=%s renderer=%s avatar=%s", the_llm.name, the_tts.default_voice,
             the_renderer.name, avatar.id)
    return services


async def _get_voices_ready(tts: VoiceRouter, pipeline: SpeechPipeline) -> None:
    """Preload the default voices' models, then learn the mouth shapes of the language defaults (``voice_en``,
    already done at start-up when it is the server's voice, and ``voice_ko``): the first Korean reply otherwise
    waited ~1.6 s for Kokoro to say the calibration words."""
    await asyncio.to_thread(_preload, tts)
    for script in ("Latin", "Hangul"):
        voice = tts.script_defaults.get(script)
        if voice is None:
            continue
        try:
            await pipeline.ensure_calibrated(voice)  # a voice that cannot be calibrated is logged there
        except Exception as exc:  # noqa: BLE001 - a background convenience must not take the server down
            log.warning("calibrating voice %s at start-up failed: %s", voice, exc)


def _preload(tts: TTS) -> None:
    """Preload the default voices; a failure is logged, and the voice then loads (or fails) on first use."""
    try:
        tts.preload()
    except Exception as exc:  # noqa: BLE001 - a background convenience must not take the server down
        log.warning("preloading the default voices failed: %s", exc)


def _avatar_library(settings: Settings, renderer: Renderer, avatar: Avatar, idle: Path,
                    metrics: Metrics, backplane: Backplane | None) -> AvatarLibrary:
    """Redis mode: uploads are kept in Redis with their session, and every node and worker registers them
    from there on first use."""
    st = settings
    limits = Limits(max_bytes=st.avatar_max_upload_bytes, max_pixels=st.avatar_max_pixels,
                    max_side_px=st.avatar_max_side_px, max_video_s=st.avatar_max_video_s,
                    max_video_side=st.avatar_max_video_side, out_side=st.render_max_side, fps=renderer.fps,
                    timeout_s=st.avatar_decode_timeout_s, min_face_px=st.avatar_min_face_px)
    quotas = Quotas(per_session=st.avatars_per_session, uploads_per_client=st.avatar_uploads_per_client,
                    max_mb=st.avatar_max_total_mb)
    shared = (RedisAvatarStore(backplane.redis, backplane.keys, st.session_idle_s, st.avatar_max_upload_bytes)
              if backplane is not None else None)
    return AvatarLibrary(renderer, avatar, idle, st.data_dir / "avatars", limits, quotas, metrics,
                         default_name=st.avatar_name, shared=shared)


def _voice_input(settings: Settings, asr: ASR | None, metrics: Metrics) -> VoiceInput | None:
    """Voice input as configured; a language the ASR cannot recognise stops the server at start-up."""
    if not settings.voice_enabled:
        return None
    the_asr = asr or create_asr(settings)
    voice = VoiceInput(the_asr, SileroModel(), asr_language(settings, the_asr), settings.vad_threshold,
                       settings.vad_hangover_ms, settings.asr_threads,
                       on_cpu=lambda stage, s: metrics.voice_cpu.labels(stage).inc(s),
                       finished_hangover_ms=settings.vad_finished_hangover_ms,
                       unfinished_hangover_ms=settings.vad_unfinished_hangover_ms,
                       on_false_end=metrics.false_early_ends.inc, on_early=metrics.early_answer)
    metrics.watch_asr(lambda: voice.budget.pending, lambda: voice.budget.running)
    return voice


def _embedded_lanes(settings: Settings, pipeline: SpeechPipeline) -> Callable[[Session], Lane]:
    # One slot per worker thread: TTS and render work of every session, earliest deadline first.
    scheduler = DeadlineScheduler(settings.render_threads)
    pipeline.scheduler = scheduler  # how much work waits, and how late: when to render small

    def make_lane(session: Session) -> SpeechLane:
        lane = SpeechLane(session.id, pipeline, session.publish, settings.session_queue_size, scheduler,
                          start_buffer_s=settings.start_buffer_ms / 1000)
        lane.start()
        return lane

    return make_lane


def redis_lanes(settings: Settings, backplane: Backplane, metrics: Metrics) -> Callable[[Session], Lane]:
    """Redis mode: each session's lane, wired to its events and event log (the web node's and the tests')."""
    def make_lane(session: Session) -> RedisLane:
        lane = RedisLane(session.id, backplane.redis, backplane.keys, session.deliver, settings.session_queue_size,
                         settings.redis_job_timeout_s, metrics, backplane.subscriber,
                         events_ttl_s=settings.session_idle_s)
        session.relay = lane.publish  # events reach the session's sockets on every node through Redis
        session.log = lane  # and a page reconnecting to any node catches up from the session's stream
        lane.start()
        return lane

    return make_lane


async def _housekeeping(s: Services) -> None:
    """Runs for the services' lifetime: reaps idle sessions (so their slots free up) and old clips (so the disk
    does not fill)."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_EVERY_S)
        try:
            await s.sessions.reap(s.settings.session_idle_s)
            s.avatars.retain(s.sessions.sessions)  # uploads go with their session (reaped or evicted)
            await asyncio.to_thread(s.clips.prune)
        except Exception:  # noqa: BLE001 - housekeeping must never take the server down
            log.exception("housekeeping failed")
