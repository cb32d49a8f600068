"""The HTTP routes: the page, sessions, chat, voices, clips, health and metrics.

Handlers only translate between HTTP and the services; they know nothing of pixels or audio.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from avatarchat.errors import BadRequest, error_body
from avatarchat.pipeline.session import check_session_id
from avatarchat.server import health
from avatarchat.server.chat import check_message, converse
from avatarchat.services import Services

CLIP_ID = re.compile(r"^[0-9a-f]{32}$")
WEB_DIR = Path(str(files("avatarchat").joinpath("web")))

router = APIRouter()


class ChatRequest(BaseModel):
    session_id: str = Field(..., description="The session token POST /session returned.")
    message: str = Field(..., description="What the user typed.")
    queue: bool = Field(False, description="Queue behind the current reply instead of interrupting it.")
    voice: str | None = Field(None, description="Voice id from GET /voices; kept for the session's next replies.")
    avatar: str | None = Field(None, description="Avatar id from GET /avatars; kept for the session's next clips.")


def services(request: Request) -> Services:
    return request.app.state.services


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """The truth about the server (``server/health.py``): 503 when a check names a problem; details only for
    callers who may read /metrics."""
    checks = getattr(request.app.state, "health_checks", health.DEFAULT_CHECKS)
    details = bool(request.scope.get("state", {}).get(health.DETAIL_KEY))
    code, body = await health.report(services(request), checks, details)
    return JSONResponse(body, status_code=code)


@router.get("/voices")
async def voices(request: Request) -> dict:
    tts = services(request).tts
    return {"default": tts.default_voice, "voices": [v.wire() for v in tts.catalogue()]}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    s = services(request)
    text = s.metrics.exposition()
    if s.backplane is not None:
        text += (await s.backplane.exposition()).encode()
    return Response(text, media_type="text/plain; version=0.0.4")


@router.get("/avatar/idle.mp4")
async def idle_clip(request: Request) -> FileResponse:
    return FileResponse(services(request).idle_clip, media_type="video/mp4")


@router.get("/clips/{clip_id}.mp4")
async def clip(request: Request, clip_id: str) -> Response:
    if not CLIP_ID.match(clip_id):
        raise BadRequest("Clip ids are 32 hex characters.")
    s = services(request)
    if s.backplane is not None and s.settings.redis_clips == "redis":
        data = await s.backplane.clip(clip_id)
        if data is None:
            return JSONResponse(error_body("not_found", f"No clip {clip_id}."), status_code=404)
        return Response(data, media_type="video/mp4")
    path = s.clips.path(clip_id)
    if not path.is_file():
        return JSONResponse(error_body("not_found", f"No clip {clip_id}."), status_code=404)
    return FileResponse(path, media_type="video/mp4")


@router.post("/session")
async def new_session(request: Request) -> dict:
    """Issue a session: its token opens the socket, posts chat messages and is the session's only name."""
    s = services(request)
    session = s.sessions.create(owner=request.client.host if request.client else "")
    await s.sessions.save(session)  # Redis mode: every node can now take it
    return {"session_id": session.id}


@router.post("/chat")
async def chat(request: Request, body: ChatRequest) -> dict:
    s = services(request)
    check_session_id(body.session_id)
    check_message(s, body.message)
    voice = s.tts.resolve(body.voice).id if body.voice else None  # an unknown voice is refused before the session
    session = await s.sessions.find(body.session_id)  # its current state is read when the turn starts (converse)
    if body.avatar:  # another session's avatar is unknown here (404), and the choice is kept only if it exists
        chosen = await s.avatars.find(body.avatar, session.id)
        session.avatar = chosen.id
        voice = voice or chosen.voice  # a gallery avatar speaks with its own voice unless one is asked for
    reply, text = await converse(s, session, body.message, queue=body.queue, voice=voice)
    return {"session_id": session.id, "reply_id": reply.id, "text": text, "sentences": reply.sentences}
