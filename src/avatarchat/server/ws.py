"""The session's WebSocket: events out (through a bounded outbox); pings, playback reports and microphone audio in.

A socket never creates a session: an unknown token gets an ``error`` event and close code 4404. A page that
reconnects says which event it saw last (``after``) and catches up on the ones it missed (see resume.py),
whichever node (Redis mode) it reaches. Binary frames
are the person's voice (16 kHz mono int16 PCM, see docs/protocol.md): the socket's own ``Listener`` finds the
turns; a speech onset while the avatar speaks makes it yield (hold), and only a real interruption cancels its
reply (see asr/interruption.py). Each final transcript with words is answered through the same ``converse``
as ``POST /chat``, unless it was a backchannel the avatar held for; a turn with no words gets a cue (cue.py).
Answers are tasks of the session, so a socket that closes mid-answer cuts nothing short. A ``voice`` frame sets
the session's voice at once (the picker), for spoken turns too, and the language they are heard in follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from avatarchat.asr import heard_language
from avatarchat.asr.backchannel import Backchannels
from avatarchat.asr.interruption import Heard, Interruption, TurnRules
from avatarchat.asr.listener import Listener
from avatarchat.errors import AvatarChatError
from avatarchat.events import ErrorEvent, Pong, Resume, SpeechCancelled, Yield
from avatarchat.pipeline.eventlog import check_event_id
from avatarchat.pipeline.session import Outbox, Session
from avatarchat.server.chat import EarlyAnswer, converse, early_answer, interrupted
from avatarchat.server.cue import not_heard
from avatarchat.server.frames import FrameGuard, FrameRefused, receive_frame
from avatarchat.server.resume import attach
from avatarchat.services import Services

log = logging.getLogger(__name__)
router = APIRouter()
BAD_FRAME = 'Expected a JSON object such as {"type": "ping"} or {"type": "clip_started", "reply": "...", "seq": 0}.'


@router.websocket("/ws")
async def ws(websocket: WebSocket, session_id: str = Query(""), after: str | None = Query(None)) -> None:
    s: Services = websocket.app.state.services
    await websocket.accept()
    try:
        session = await s.sessions.find(session_id)
        box = await attach(session, None if after is None else check_event_id(after))
    except AvatarChatError as exc:
        await websocket.send_json({"type": "error", "session": "", "code": exc.code, "message": exc.public})
        await websocket.close(code=4404 if exc.code == "unknown_session" else 1008)
        return
    sender = asyncio.create_task(_send_loop(websocket, box))
    guard = FrameGuard(s.settings)
    voice: tuple[Listener, Interruption] | None = None  # made on the first audio frame (or voice_hold)
    try:
        while True:
            raw = await receive_frame(websocket, guard)
            session.last_seen = time.monotonic()
            if isinstance(raw, FrameRefused):
                box.put(ErrorEvent(session=session.id, code=raw.code, message=raw.message).wire())
            elif isinstance(raw, bytes):
                voice = voice or _listen(s, session)
                if not voice[0].push(np.frombuffer(raw, dtype="<i2").astype(np.int16)):
                    box.put(ErrorEvent(session=session.id, code="rate_limited",
                                       message="Audio is arriving faster than it can be processed; "
                                               "a frame was dropped.").wire())
            else:
                if voice is None and s.voice is not None and _is_hold(raw):
                    voice = _listen(s, session)  # hold-to-talk pressed before the first audio frame
                if (choice := client_frame(session, box, raw, voice[0] if voice else None)) is not None:
                    await choose_voice(s, session, box, choice.value)
    except WebSocketDisconnect:
        pass
    finally:
        session.outboxes.discard(box)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if voice is not None:
            voice[1].close()
            await voice[0].aclose()


def turn_rules(s: Services) -> TurnRules:
    st = s.settings
    return TurnRules(check_s=st.interrupt_check_ms / 1000, recheck_s=st.interrupt_recheck_ms / 1000,
                     max_s=st.interrupt_max_speech_ms / 1000,
                     min_logprob=st.interrupt_min_logprob, backchannels=Backchannels(st.backchannels))


def _listen(s: Services, session: Session) -> tuple[Listener, Interruption]:
    """This socket's listener: an onset makes the speaking avatar yield, a real interruption cancels its
    replies, final transcripts with words are chat messages (answered at the turn's pause and held back until
    the turn ends, where ``early_answer`` allows it), turns without words get the cue. Answers and the saving of
    barge-ins are the session's work (``Session.turns``), so closing the socket stops neither."""
    assert s.voice is not None  # the guard refuses audio when voice input is off

    def refresh() -> None:
        """The session's state read again (Redis mode: a voice chosen on another node decides the language the
        coming turn is heard in) and what a barge-in changed saved, as a task of the session."""
        with contextlib.suppress(AvatarChatError):  # the session closed meanwhile
            session.turns.start(interrupted(s, session))

    def onset() -> None:
        turns.onset()
        refresh()

    def cancel(held: list[str]) -> None:
        s.metrics.voice_yields.labels("cancelled").inc()
        cancelled = session.interrupt()
        if cancelled:
            s.metrics.cancelled.inc(len(cancelled))
        for reply in set(held) - {r.id for r in cancelled}:  # over on the server, maybe still held on the page
            session.publish(SpeechCancelled(session=session.id, reply=reply))
        refresh()

    def resume() -> None:
        s.metrics.voice_yields.labels("resumed").inc()
        session.publish(Resume(session=session.id))

    turns = Interruption(turn_rules(s), lambda: [r.id for r in session.lane.speaking()] if session.lane else [],
                         lambda: session.publish(Yield(session=session.id)), resume, cancel)

    async def on_final(heard: Heard) -> None:
        verdict = turns.final(heard)
        if verdict == "ignore":
            log.info("session %s… backchannel while the avatar spoke: %r", session.label, heard.text[:40])
            return
        try:
            if verdict == "not_heard":
                await not_heard(s, session)
                return
            await converse(s, session, heard.text)
        except AvatarChatError as exc:  # the pipeline already told the page about backend failures
            if exc.code == "bad_request":
                session.publish(ErrorEvent(session=session.id, code=exc.code, message=exc.public))
            else:
                log.info("voice message of session %s… not answered: %s", session.label, exc.code)

    def start_early(text: str) -> EarlyAnswer | None:
        """Only for a turn the avatar did not yield to: one it did is judged by ``turns`` when it ends (a
        backchannel is not answered), which an early answer would skip."""
        if turns.held_this_turn():
            return None
        return early_answer(s, session, text)

    listener = s.voice.listener(session.id, session.publish, onset, on_final, turns.progress, start_early,
                                language=lambda: spoken_language(s, session))
    turns.words_so_far = listener.words_so_far
    return listener, turns


def _is_hold(raw: str) -> bool:
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "voice_hold"


def spoken_language(s: Services, session: Session) -> str | None:
    """The language a turn of ``session`` is heard in now: the server's, if one is set, else its voice's."""
    assert s.voice is not None
    if s.voice.language is not None:
        return s.voice.language
    try:
        voice_language = s.tts.resolve(session.voice).language
    except AvatarChatError:  # a voice this node does not list (set by a node configured otherwise)
        voice_language = None
    return heard_language(voice_language, s.voice.asr.languages)


async def choose_voice(s: Services, session: Session, box: Outbox, voice: object) -> None:
    """A ``voice`` frame (the page's picker): the session's voice from now on, typed and spoken turns alike;
    saved at once (Redis mode: for every node). An unknown id gets an ``error`` event and changes nothing."""
    try:
        session.voice = s.tts.resolve(voice).id  # only listed ids (router.resolve), as /chat's ``voice``
        await s.sessions.save(session)
    except AvatarChatError as exc:
        box.put(ErrorEvent(session=session.id, code=exc.code, message=exc.public).wire())


@dataclass(frozen=True)
class VoiceChoice:
    value: object  # as the page sent it: checked by ``choose_voice``


def client_frame(session: Session, box: Outbox, raw: str, listener: Listener | None = None) -> VoiceChoice | None:
    """One text frame from the page: a ping, a playback report (``clip_started`` / ``clip_ended``),
    ``voice_hold`` (hold-to-talk pressed), ``voice_end`` (released) or ``voice`` (the picker changed: returned,
    for the caller to apply, as that awaits the store)."""
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
    elif kind == "voice_end":
        if listener is not None:
            listener.end_turn()
    elif kind == "voice_hold":
        if listener is not None:
            listener.hold()
    elif kind == "voice" and "voice" in obj:
        return VoiceChoice(obj["voice"])
    else:
        box.put(ErrorEvent(session=session.id, code="bad_frame", message=BAD_FRAME).wire())
    return None


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
