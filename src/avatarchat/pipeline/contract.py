"""What a lane is to its users, and what it needs from the CPU side: the seams between the web layer, the
lanes and the engine. ``SpeechLane`` (in-process) and ``RedisLane`` (jobs to worker processes) both satisfy
``Lane``; ``SpeechPipeline`` satisfies ``SpeechEngine``, in the server and in ``avatarchat worker``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from avatarchat.data import Speech
from avatarchat.metrics import Metrics
from avatarchat.pipeline.jobs import SpeechJob
from avatarchat.pipeline.reply import Reply


@dataclass(frozen=True)
class RenderedClip:
    path: Path
    url: str
    duration_s: float  # the clip's own length (video frames / fps), which covers the speech
    render_s: float  # producing the frames
    encode_s: float  # encoding them, less the time the encoder waited for frames (the two overlap)
    total_s: float  # wall time, both together


class SpeechEngine(Protocol):
    """The CPU side every lane shares: voice a job, render and encode it."""

    metrics: Metrics
    secrets: tuple[str, ...]

    async def voice(self, job: SpeechJob, alone: bool = False) -> Speech:
        """Voice ``job``; ``alone``: nothing else is using the CPU now, so the TTS may use every core."""
        ...

    def voice_needs_slot(self, job: SpeechJob) -> bool:
        """Whether voicing ``job`` is CPU work that needs a scheduler slot (a cloud TTS only waits)."""
        ...

    async def render(self, job: SpeechJob, speech: Speech, reply: Reply) -> RenderedClip: ...


class Lane(Protocol):
    """What the web layer and the session use of a lane. ``SpeechLane`` runs the stages in this process; a
    lane that hands jobs to worker processes (over Redis, say) implements the same methods."""

    @property
    def waiting(self) -> int: ...

    def start(self) -> None: ...

    async def ready(self) -> None:
        """Return once the lane can deliver this session's events (at once for an in-process lane)."""

    def begin(self, reply: Reply) -> None: ...

    def has_room(self) -> bool: ...

    def submit(self, reply: Reply, text: str, voice: str, avatar: str | None = None) -> int: ...

    def end(self, reply: Reply) -> None: ...

    def speaking(self) -> list[Reply]: ...

    def cancel_all(self) -> list[Reply]: ...

    def report(self, reply_id: str, seq: int, ended: bool) -> None: ...

    def state(self) -> list[dict]: ...

    async def aclose(self) -> None: ...
