"""The events the server pushes over ``/ws`` (one JSON object per message). See docs/protocol.md."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Event(BaseModel):
    type: str
    session: str

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ReplyText(Event):
    type: Literal["reply_text"] = "reply_text"
    reply: str
    text: str
    timings_ms: dict[str, float] = {}


class ReplyPartial(Event):
    """The reply so far, sent each time the LLM completes a sentence, so slow LLMs still show words early."""

    type: Literal["reply_partial"] = "reply_partial"
    reply: str
    text: str


class ClipReady(Event):
    type: Literal["clip_ready"] = "clip_ready"
    reply: str
    job: str
    seq: int
    url: str
    text: str
    duration_s: float
    voice: str | None = None
    timings_ms: dict[str, float] = {}


class SpeechDone(Event):
    """Every sentence of the reply is announced or failed: ``sentences`` seqs (0..n-1), ``clips`` of them ready."""

    type: Literal["speech_done"] = "speech_done"
    reply: str
    clips: int
    sentences: int
    timings_ms: dict[str, float] = {}


class SpeechCancelled(Event):
    type: Literal["speech_cancelled"] = "speech_cancelled"
    reply: str


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    code: str
    message: str
    reply: str | None = None
    seq: int | None = None  # the sentence that failed: the page skips it instead of waiting for its clip


class Pong(Event):
    type: Literal["pong"] = "pong"


class SpeechSkipped(Event):
    """Admission control: the speech backlog is too long, so this reply comes as text only."""

    type: Literal["speech_skipped"] = "speech_skipped"
    reply: str
    message: str


class SessionState(Event):
    """Sent when a socket opens: the replies still to be heard, so a reloaded or reconnected page resumes.
    ``last_id``: the session's last event before this one (a page that has seen none reconnects ``after`` it);
    ``resumed`` (only when the page gave ``after``): whether every event it missed follows; ``history``: the
    newest messages of the conversation, so a reloaded page shows its log again."""

    type: Literal["session_state"] = "session_state"
    replies: list[dict[str, Any]]
    last_id: str = "0-0"
    resumed: bool | None = None
    history: list[dict[str, str]] = []


class VadState(Event):
    """Voice input: the person started (``speech``) or finished (``silence``) a spoken turn."""

    type: Literal["vad"] = "vad"
    state: Literal["speech", "silence"]


class TranscriptEvent(Event):
    """Voice input: what the person is saying (``final`` false, while they speak) or said (``final`` true; the
    server then answers it as a chat message; empty text: the turn held no words)."""

    type: Literal["transcript"] = "transcript"
    text: str
    final: bool


class Yield(Event):
    """Voice input: the person started speaking while the avatar speaks; it holds (the page ducks the voice and
    pauses the clip at its frame) until ``resume`` or, for a real interruption, ``speech_cancelled``."""

    type: Literal["yield"] = "yield"


class Resume(Event):
    """Voice input: what held the avatar was a backchannel or a noise; it goes on where it held."""

    type: Literal["resume"] = "resume"


class NotHeard(Event):
    """Voice input: a turn with no words. ``text`` is the avatar's cue; ``reply`` is there when it is also
    spoken (its clips follow as for any reply), absent when the avatar was busy (text only)."""

    type: Literal["not_heard"] = "not_heard"
    text: str
    reply: str | None = None
