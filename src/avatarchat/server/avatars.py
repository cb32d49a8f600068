"""The avatar routes: upload a face, list the ones a session may use, their previews, idle and listening loops,
delete one.

Handlers only translate between HTTP and the ``AvatarLibrary`` (avatars/library.py); the checks a hostile file
meets live in avatars/intake.py. Every route names the session, and an avatar of another session is a 404.
In Redis mode any node answers for any session: uploads are kept in Redis under their session.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

from avatarchat.avatars.library import Entry
from avatarchat.errors import BadRequest, UploadRefused
from avatarchat.pipeline.session import check_session_id
from avatarchat.services import Services

router = APIRouter()


def _services(request: Request) -> Services:
    return request.app.state.services


@router.post("/avatars", status_code=201)
async def upload(request: Request, file: Annotated[UploadFile, File(description="A photo (JPEG, PNG, WebP) or a "
                                                                                "short video (MP4, WebM, MOV).")],
                 session_id: Annotated[str, Form(description="The session that will own the avatar.")]) -> JSONResponse:
    """Register the face in ``file`` for ``session_id``: it becomes the session's avatar at once. The file name
    and content type are ignored; the bytes say what the file is."""
    s = _services(request)
    if not s.settings.avatar_uploads:
        raise UploadRefused("uploads_off", "This server does not take avatar uploads; choose one from "
                                           "GET /avatars.", 403)
    session = await s.sessions.find(check_session_id(session_id))
    data = await file.read(s.settings.avatar_max_upload_bytes + 1)
    await file.close()
    client = request.client.host if request.client else ""
    entry = await s.avatars.add(session.id, client, data)
    session.avatar = entry.id  # only now: a refused upload leaves the session on its previous avatar
    await s.sessions.save(session)  # Redis mode: the choice holds on every node
    return JSONResponse(entry.wire(), status_code=201)


@router.get("/avatars")
async def listing(request: Request, session_id: str = Query(...)) -> dict:
    """The gallery and the session's own uploads; ``current`` is the one its clips use."""
    s = _services(request)
    session = await s.sessions.find(check_session_id(session_id), refresh=True)
    return {"current": session.avatar or s.avatars.default.id, "avatars": await s.avatars.listing(session.id)}


@router.get("/avatars/{avatar_id}/preview.jpg")
async def preview(request: Request, avatar_id: str, session_id: str | None = Query(None)) -> Response:
    jpeg = await _services(request).avatars.preview(avatar_id, _session(request, session_id))
    return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


@router.get("/avatars/{avatar_id}/idle.mp4")
async def idle(request: Request, avatar_id: str, session_id: str | None = Query(None)) -> Response:
    """The avatar's idle loop; an upload's is built right after it registers, so this may wait for it."""
    s = _services(request)
    entry = await s.avatars.find(avatar_id, _session(request, session_id))
    return await _loop_response(s.avatars.idle_clip(entry), "idle_unavailable",
                                "This avatar's idle loop could not be made; its replies still play.")


@router.get("/avatar/listen.mp4")
async def default_listen(request: Request) -> Response:
    """The default avatar's listening loop (beside ``/avatar/idle.mp4``)."""
    s = _services(request)
    return await listening_response(s, s.avatars.default)


@router.get("/avatars/{avatar_id}/listen.mp4")
async def listen(request: Request, avatar_id: str, session_id: str | None = Query(None)) -> Response:
    """The avatar's listening loop, played while the person speaks; built on first request, so this may wait."""
    s = _services(request)
    entry = await s.avatars.find(avatar_id, _session(request, session_id))
    return await listening_response(s, entry)


async def listening_response(s: Services, entry: Entry) -> Response:
    return await _loop_response(s.avatars.listening_clip(entry), "listen_unavailable",
                                "This avatar's listening loop could not be made; it listens on its idle loop.")


async def _loop_response(clip: Awaitable[Path], code: str, message: str) -> Response:
    """A loop's MP4, or a 503 that says what still works when it could not be built."""
    try:
        path = await clip
    except Exception:  # noqa: BLE001 - logged where it was built
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=503)
    return FileResponse(path, media_type="video/mp4")


@router.delete("/avatars/{avatar_id}", status_code=204)
async def delete(request: Request, avatar_id: str, session_id: str = Query(...)) -> Response:
    s = _services(request)
    session = await s.sessions.find(check_session_id(session_id), refresh=True)
    await s.avatars.remove(avatar_id, session.id)
    if session.avatar == avatar_id:
        session.avatar = None  # back to the default
        await s.sessions.save(session)
    return Response(status_code=204)


def _session(request: Request, session_id: str | None) -> str | None:
    """The session asking, if it exists (a gallery avatar needs none); an unknown one sees only the gallery. In
    Redis mode the store keeps each upload under its session, so the token itself is the check."""
    if session_id is None:
        return None
    s = _services(request)
    if s.backplane is not None:
        try:
            return check_session_id(session_id)
        except BadRequest:
            return None
    return session_id if session_id in s.sessions.sessions else None
