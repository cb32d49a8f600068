"""App factory. Every dependency (settings, LLM, TTS, renderer) comes in through ``create_app``, so tests
build the real app around any backend."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from avatarchat.encode import encode_clip
from avatarchat.errors import AvatarChatError, BadRequest, redact
from avatarchat.events import ErrorEvent, Pong, SessionState
from avatarchat.llm import LLM, create_llm
from avatarchat.metrics import Metrics
from avatarchat.pipeline.clips import ClipStore
from avatarchat.pipeline.lane import SpeechLane
from avatarchat.pipeline.session import Outbox, Session, SessionManager, check_session_id
from avatarchat.pipeline.worker import SpeechPipeline
from avatarchat.render import Avatar, Renderer, create_renderer
from avatarchat.runtime import single_threaded_blas
from avatarchat.server.security import FrameGuard, FrameRefused, docs_urls, receive_frame, secure
from avatarchat.settings import Settings
from avatarchat.tts import TTS, VoiceRouter, as_router, create_tts

log = logging.getLogger(__name__)
CLIP_ID = re.compile(r"^[0-9a-f]{32}$")
WEB_DIR = Path(str(files("avatarchat").joinpath("web")))
SHUTDOWN_WAIT_S = 5.0


class ChatRequest(BaseModel):
    session_id: str = Field(..., description="The session token POST /session returned.")
    message: str = Field(..., description="What the user typed.")
    queue: bool = Field(False, description="Queue behind the current reply instead of interrupting it.")
    voice: str | None = Field(None, description="Voice id from GET /voices; kept for the session's next replies.")


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


def build_idle_clip(renderer: Renderer, avatar: Avatar, cache_dir: Path) -> Path:
    """The avatar's idle loop as an MP4 (silent audio track), cached next to the avatar's landmarks."""
    path = cache_dir / avatar.id / "idle.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = list(renderer.idle_frames(avatar))
        encode_clip(path, frames, np.zeros(1, np.int16), 16000, renderer.fps)
    return path


async def housekeeping(sessions: SessionManager, clips_dir: Path, settings: Settings, every_s: float = 60.0) -> None:
    """Runs for the app's lifetime: reaps idle sessions (so their slots free up) and old clips (so disk does not fill)."""
    clips = ClipStore(clips_dir, settings.clip_ttl_s)
    while True:
        await asyncio.sleep(every_s)
        try:
            await sessions.reap(settings.session_idle_s)
            await asyncio.to_thread(clips.prune)
        except Exception:  # noqa: BLE001 - housekeeping must never take the server down
            log.exception("housekeeping failed")


def create_app(settings: Settings | None = None, *, llm: LLM | None = None, tts: TTS | None = None,
               renderer: Renderer | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        single_threaded_blas()  # before any worker thread enters numpy (see runtime.py)
        the_llm = llm or create_llm(settings)
        the_tts = as_router(tts) if tts is not None else create_tts(settings)
        the_renderer = renderer or create_renderer(settings)
        log.info("registering avatar %s", settings.resolved_avatar())
        avatar = await asyncio.to_thread(the_renderer.register, settings.resolved_avatar())
        idle = await asyncio.to_thread(build_idle_clip, the_renderer, avatar, settings.data_dir / "avatars")
        await asyncio.to_thread(the_tts.warm_up)
        warm_llm = getattr(the_llm, "warm_up", None)  # e.g. the faq backend embeds its questions once
        if warm_llm is not None:
            await asyncio.to_thread(warm_llm)
        metrics = Metrics()
        pipeline = SpeechPipeline(the_llm, the_tts, the_renderer, avatar, settings.data_dir / "clips",
                                  threads=settings.render_threads, metrics=metrics, secrets=settings.secrets())

        def make_lane(session: Session) -> SpeechLane:
            lane = SpeechLane(session.id, pipeline, session.publish, settings.session_queue_size)
            lane.start()
            return lane

        sessions = SessionManager(settings.max_sessions, settings.session_queue_size, settings.history_turns,
                                  make_lane, history_token_budget=settings.history_token_budget)
        metrics.watch_queues(sessions.queue_depths)
        await pipeline.ensure_calibrated(the_tts.default_voice)
        app.state.services = Services(settings, the_llm, the_tts, the_renderer, avatar, idle, pipeline, sessions,
                                      metrics)
        log.info("avatarchat ready: llm=%s voice=%s renderer=%s avatar=%s", the_llm.name, the_tts.default_voice,
                 the_renderer.name, avatar.id)
        keeper = asyncio.create_task(housekeeping(sessions, pipeline.clips_dir, settings))
        try:
            yield
        finally:  # every reply is cancelled; nothing waits without bound; no half-written clip stays behind
            keeper.cancel()
            try:
                await asyncio.wait_for(sessions.close(), SHUTDOWN_WAIT_S)
            except TimeoutError:
                log.warning("shutdown: sessions did not close within %.0f s", SHUTDOWN_WAIT_S)
            pipeline.close()
            await asyncio.to_thread(ClipStore(pipeline.clips_dir, settings.clip_ttl_s).remove_partials)
            await the_llm.aclose()
            await the_tts.aclose()

    app = FastAPI(title="avatarchat", lifespan=lifespan, **docs_urls(settings))
    secure(app, settings)  # Host/Origin/access key, rates, body limits, security headers, favicon

    def services(request: Request | WebSocket) -> Services:
        return request.app.state.services

    @app.exception_handler(AvatarChatError)
    async def _app_error(request: Request, exc: AvatarChatError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, redact(exc.message, settings.secrets()))
        return JSONResponse({"error": {"code": exc.code, "message": exc.public}}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": {"code": "bad_request", "message": "; ".join(parts)}}, status_code=422)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """The truth about the pipeline: 503 when renders are running but none makes progress."""
        s = services(request)
        pipeline = s.pipeline.health(s.settings.render_stall_s)
        waiting = s.sessions.jobs_waiting()
        pipeline.update(jobs_waiting=waiting, expected_wait_s=round(s.pipeline.expected_wait_s(waiting), 2))
        body = {"status": "stalled" if pipeline["stalled"] else "ok", "llm": s.llm.name, "tts": s.tts.primary,
                "voice": s.tts.default_voice, "renderer": s.renderer.name, "avatar": s.avatar.id,
                "sessions": len(s.sessions.sessions), "tasks": len(asyncio.all_tasks()), "pipeline": pipeline}
        return JSONResponse(body, status_code=503 if pipeline["stalled"] else 200)

    @app.get("/voices")
    async def voices(request: Request) -> dict:
        tts = services(request).tts
        return {"default": tts.default_voice, "voices": [v.wire() for v in tts.catalogue()]}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(services(request).metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/avatar/idle.mp4")
    async def idle_clip(request: Request) -> FileResponse:
        return FileResponse(services(request).idle_clip, media_type="video/mp4")

    @app.get("/clips/{clip_id}.mp4")
    async def clip(request: Request, clip_id: str) -> FileResponse:
        if not CLIP_ID.match(clip_id):
            raise BadRequest("Clip ids are 32 hex characters.")
        path = services(request).pipeline.clips_dir / f"{clip_id}.mp4"
        if not path.is_file():
            return JSONResponse({"error": {"code": "not_found", "message": f"No clip {clip_id}."}}, status_code=404)
        return FileResponse(path, media_type="video/mp4")

    @app.post("/session")
    async def new_session(request: Request) -> dict:
        """Issue a session: its token opens the socket, posts chat messages and is the session's only name."""
        session = services(request).sessions.create()
        return {"session_id": session.id}

    @app.post("/chat")
    async def chat(request: Request, body: ChatRequest) -> dict:
        s = services(request)
        check_session_id(body.session_id)
        message = body.message.strip()
        if not message:
            raise BadRequest("message is empty: type something for the avatar to answer.")
        if len(message) > s.settings.max_message_chars:
            raise BadRequest(f"message is {len(message)} characters; the limit is {s.settings.max_message_chars}.")
        voice = s.tts.resolve(body.voice).id if body.voice else None
        session = s.sessions.get(body.session_id)
        if voice is not None:
            session.voice = voice
        reply, cancelled = session.begin_reply(message, barge_in=not body.queue)
        if cancelled:
            s.metrics.cancelled.inc(len(cancelled))
        # Admission control: rather than a minute of silence, a busy server answers in text only.
        speak = s.pipeline.expected_wait_s(s.sessions.jobs_waiting()) <= s.settings.max_speech_wait_s
        text = await s.pipeline.reply(session, reply, speak=speak)
        return {"session_id": session.id, "reply_id": reply.id, "text": text, "sentences": reply.sentences}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session_id: str = Query("")) -> None:
        s = services(websocket)
        await websocket.accept()
        try:
            session = s.sessions.get(session_id)
        except AvatarChatError as exc:
            await websocket.send_json({"type": "error", "session": "", "code": exc.code, "message": exc.public})
            await websocket.close(code=4404 if exc.code == "unknown_session" else 1008)
            return
        box = Outbox()
        session.outboxes.add(box)
        assert session.lane is not None
        box.put(SessionState(session=session.id, replies=session.lane.state()).wire())
        sender = asyncio.create_task(_send_loop(websocket, box))
        guard = FrameGuard(s.settings)
        try:
            while True:
                raw = await receive_frame(websocket, guard)
                session.last_seen = time.monotonic()
                if isinstance(raw, FrameRefused):
                    box.put(ErrorEvent(session=session.id, code=raw.code, message=raw.message).wire())
                    continue
                _client_frame(session, box, raw)
        except WebSocketDisconnect:
            pass
        finally:
            session.outboxes.discard(box)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _client_frame(session: Session, box: Outbox, raw: str) -> None:
    """One frame from the page: a ping, or a playback report (``clip_started`` / ``clip_ended``)."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, ValueError, RecursionError):
        obj = None
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "ping":
        box.put(Pong(session=session.id).wire())
    elif kind in ("clip_started", "clip_ended") and isinstance(obj.get("reply"), str) \
            and isinstance(obj.get("seq"), int) and not isinstance(obj.get("seq"), bool):
        assert session.lane is not None
        session.lane.report(obj["reply"], obj["seq"], ended=kind == "clip_ended")
    else:
        box.put(ErrorEvent(session=session.id, code="bad_frame",
                           message='Expected a JSON object such as {"type": "ping"} or '
                                   '{"type": "clip_started", "reply": "...", "seq": 0}.').wire())


async def _send_loop(websocket: WebSocket, box: Outbox) -> None:
    """Drains one socket's outbox; closes the socket if the client fell so far behind that events were lost."""
    overflow = asyncio.create_task(box.overflowed.wait())
    get: asyncio.Task | None = None
    try:
        while True:
            get = asyncio.create_task(box.queue.get())
            done, _ = await asyncio.wait({get, overflow}, return_when=asyncio.FIRST_COMPLETED)
            if overflow in done:
                await websocket.close(code=1013, reason="client too slow; reconnect")
                return
            await websocket.send_json(get.result())
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:  # a closed socket leaves no task behind
        overflow.cancel()
        if get is not None:
            get.cancel()
