"""What moves through the per-session queues. ``SpeechJob`` is plain data, so it could cross a process or a
network queue later without the web layer changing."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Reply:
    """One answer of the avatar: its sentences become jobs; ``cancel`` stops all of them (barge-in)."""

    session: str
    id: str = field(default_factory=new_id)
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    cancelled_at: float | None = None
    jobs: int = 0
    clips: int = 0
    finished: bool = False

    def ms_since_start(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


@dataclass(frozen=True)
class SpeechJob:
    id: str
    session: str
    reply: str
    seq: int
    text: str
    voice: str | None = None


@dataclass(frozen=True)
class ReplyEnd:
    """Marks the end of a reply in the queues, so ``speech_done`` follows its last clip."""

    reply: str
