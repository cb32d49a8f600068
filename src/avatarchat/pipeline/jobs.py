"""What moves through a lane's queues. Plain frozen data, so it could cross a process or a network queue
without the web layer changing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeechJob:
    """One sentence to voice and render: ``seq`` orders it within its reply."""

    id: str
    reply: str
    seq: int
    text: str
    voice: str | None = None
    avatar: str | None = None  # the session's chosen avatar id; None: the server's default
    session: str | None = None  # whose job it is: an uploaded avatar is found through its session


@dataclass(frozen=True)
class ReplyEnd:
    """Marks the end of a reply in the queues, so ``speech_done`` follows its last clip."""

    reply: str
