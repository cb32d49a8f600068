"""The nodes' bookkeeping about a session's replies (Redis mode), as typed messages.

Every web node holding a session keeps a copy of its replies (``Reply`` objects). The node writing a reply
tells the others what happens to it with these messages; they travel in the session's event stream (so a node
whose channel dropped catches up on them, see event_stream.py) except ``SyncRequest`` and ``Sync``, which are
addressed to one node at one moment and only published. On the wire each is a JSON object whose ``type``
starts with ``_`` (a page never gets one); ``parse`` turns one back into its class, or None when it is not a
well-formed message (dropped, never fatal).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Begin:
    """A node started writing a reply."""
    type: ClassVar[str] = "_begin"
    reply: str


@dataclass(frozen=True)
class Sentence:
    """The writer queued the reply's next sentence (the others count it against the session's queue limit)."""
    type: ClassVar[str] = "_sentence"
    reply: str
    seq: int
    text: str


@dataclass(frozen=True)
class End:
    """The writer finished the reply's text: ``sentences`` in all."""
    type: ClassVar[str] = "_end"
    reply: str
    sentences: int | None


@dataclass(frozen=True)
class Cancel:
    """A barge-in on some node: every copy stops, and the writer's LLM stream with it."""
    type: ClassVar[str] = "_cancel"
    reply: str


@dataclass(frozen=True)
class Played:
    """A page reported a clip started (or ended) playing."""
    type: ClassVar[str] = "_played"
    reply: str
    seq: int
    ended: bool


@dataclass(frozen=True)
class SyncRequest:
    """A node joining the session asks the others for the replies still being heard."""
    type: ClassVar[str] = "_sync_request"
    node: str
    reply: str = ""


@dataclass(frozen=True)
class Sync:
    """The answer to ``node``'s ``SyncRequest``: each live reply's state and sentence texts."""
    type: ClassVar[str] = "_sync"
    to: str
    replies: list[dict[str, Any]] = field(default_factory=list)
    reply: str = ""


Message = Begin | Sentence | End | Cancel | Played | SyncRequest | Sync
KINDS: dict[str, type[Message]] = {c.type: c for c in (Begin, Sentence, End, Cancel, Played, SyncRequest, Sync)}
EPHEMERAL = (SyncRequest, Sync)  # published only; the rest is recorded in the session's stream


def wire(message: Message) -> dict[str, Any]:
    return {"type": message.type, **asdict(message)}


def parse(raw: dict[str, Any]) -> Message | None:
    """The message ``raw`` carries; None for anything else (an event, or a malformed message)."""
    name = raw.get("type")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return None
    names = {f.name for f in fields(kind)}
    try:
        return kind(**{k: v for k, v in raw.items() if k in names})
    except TypeError:  # a field missing
        return None
