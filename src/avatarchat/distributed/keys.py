"""Every Redis name avatarchat uses, in one place, and how a message is written on the wire.

Jobs:     ``<p>:jobs:<bucket>`` (streams; consumer group ``workers`` on each): one entry per sentence to voice
          and render, in the stream of its deadline (wall-clock time floored to a quarter second, the bucket).
          ``<p>:jobs:due`` and ``<p>:jobs:active`` (sorted sets of bucket streams, scored by bucket time):
          buckets that may hold unclaimed jobs, and buckets that hold any entry; workers claim from the
          earliest (``distributed/jobqueue.py``). ``<p>:jobs:wake`` (list): one token per job added, which
          idle workers wait on with BLPOP.
Done:     ``<p>:done:<job>`` (SET NX): the job was announced (or failed); a retried job sees it and stays quiet.
Clips:    ``<p>:clip:<job>`` (bytes, TTL): the MP4, written whole in one SET, so a half clip is never served.
Cancel:   ``<p>:cancel:<reply>`` (key, TTL) for jobs still queued; channel ``<p>:cancel`` for renders running.
Events:   ``<p>:events:<session>``, a stream and a channel of the same name. The stream (field ``e``: the
          event, trimmed to ~256 entries, TTL renewed on each write) records what the session's page
          receives, so a page reconnecting to any node catches up; each entry is also published on the
          channel with its stream id as ``id`` (one Lua script: the channel's order is the stream's), which
          wakes the nodes holding the session within a millisecond. The nodes' own bookkeeping messages
          (types starting with ``_``) go on the channel only.
Sessions: ``<p>:session:<id>`` (hash: ``live``, ``voice``, ``avatar``; TTL) and ``<p>:history:<id>`` (list, same TTL,
          trimmed): the history as appended entries (a user message, an answer, a forgotten turn) keyed
          by their turn, so two nodes' turns merge instead of overwriting each other.
Avatars:  ``<p>:avatars:<id>`` (hash, the session's TTL): the session's uploaded avatars, each its listing,
          source (PNG or MP4 we re-encoded), landmarks and preview (``distributed/avatar_store.py``).
Backlog:  ``<p>:backlog`` (sorted set): every sentence queued and not yet announced, cluster-wide, scored by
          when it times out (so a dead node's entries stop counting); admission control reads it.
Workers:  ``<p>:worker:<name>`` (JSON, TTL of a few seconds): a live worker's heartbeat and counters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    prefix: str = "avatarchat"

    def jobs_bucket(self, bucket: int) -> str:
        """The stream of the jobs due in deadline bucket ``bucket`` (see ``distributed/jobqueue.py``)."""
        return f"{self.prefix}:jobs:{bucket}"

    @property
    def jobs_due(self) -> str:
        return f"{self.prefix}:jobs:due"

    @property
    def jobs_active(self) -> str:
        return f"{self.prefix}:jobs:active"

    @property
    def jobs_wake(self) -> str:
        return f"{self.prefix}:jobs:wake"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    @property
    def reclaimed(self) -> str:
        return f"{self.prefix}:stats:reclaimed"

    def done(self, job: str) -> str:
        return f"{self.prefix}:done:{job}"

    def clip(self, job: str) -> str:
        return f"{self.prefix}:clip:{job}"

    def cancel(self, reply: str) -> str:
        return f"{self.prefix}:cancel:{reply}"

    def events(self, session: str) -> str:
        return f"{self.prefix}:events:{session}"

    def worker_alive(self, name: str) -> str:
        """A worker's liveness (a short TTL): gone, its claimed jobs are taken over (jobqueue.orphaned)."""
        return f"{self.prefix}:alive:{name}"

    def node(self, node_id: str) -> str:
        """A process's own channel: its pub/sub subscription stays open on it while it holds no session."""
        return f"{self.prefix}:node:{node_id}"

    def session(self, session: str) -> str:
        return f"{self.prefix}:session:{session}"

    def history(self, session: str) -> str:
        return f"{self.prefix}:history:{session}"

    def avatars(self, session: str) -> str:
        return f"{self.prefix}:avatars:{session}"

    @property
    def backlog(self) -> str:
        return f"{self.prefix}:backlog"

    def worker(self, name: str = "*") -> str:
        return f"{self.prefix}:worker:{name}"


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> dict[str, Any]:
    return json.loads(raw)
