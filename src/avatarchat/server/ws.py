"""The session's WebSocket: events out (through a bounded outbox), pings and playback reports in.

A socket never creates a session: an unknown token gets an ``error`` event and close code 4404.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from avatarchat.errors import AvatarChatError
from avatarchat.events import ErrorEvent, Pong, SessionState
from avatarchat.pipeline.session import Outbox, Session
from avatarchat.server.security import FrameGuard, FrameRefused, receive_frame

router = APIRouter()
BAD_FRAME = 'Expected a JSON object such as {"type": "ping"} or {"type": "clip_started", "reply": "...", "seq": 0}.'


@router.websocket("/ws")
async def ws(websocket: WebSocket, session_id: str = Query("")) -> None:
    s = websocket.app.state.services
    await websocket.accept()
    try:
        session = await s.sessions.find(session_id)
    except AvatarChatError as exc:
        await websocket.send_json({"type": "error", "session": "", "code": exc.code, "message": exc.public})
        await websocket.close(code=4404 if exc.code == "unknown_session" else 1008)
        return
    box = Outbox()
    session.outboxes.add(box)
    box.put(SessionState(session=session.id, replies=session.lane.state()).wire())
    sender = asyncio.create_task(_send_loop(websocket, box))
    guard = FrameGuard(s.settings)
    try:
        while True:
            raw = await receive_frame(websocket, guard)
            session.last_seen = time.monotonic()
            if isinstance(raw, FrameRefused):
                box.put(ErrorEvent(session=session.id, code=raw.code, message=raw.message).wire())
            else:
                client_frame(session, box, raw)
    except WebSocketDisconnect:
        pass
    finally:
        session.outboxes.discard(box)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def client_frame(session: Session, box: Outbox, raw: str) -> None:
    """One frame from the page: a ping, or a playback report (``clip_started`` / ``clip_ended``)."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, ValueError, RecursionError):
        obj = None
    kind = obj.get("type") if isinstance(obj, dict) else None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    if kind == "ping":
        box.put(Pong(session=session.id).wire())
    elif kind in ("clip_started", "clip_ended") and isinstance(obj.get("reply"), str) \
            and isinstance(seq, int) and not isinstance(seq, bool):
        session.lane.report(obj["reply"], seq, ended=kind == "clip_ended")
    else:
        box.put(ErrorEvent(session=session.id, code="bad_frame", message=BAD_FRAME).wire())


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
