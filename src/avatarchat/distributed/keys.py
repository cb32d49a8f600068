"""Every Redis name avatarchat uses, in one place, and how a message is written on the wire.

Jobs:     ``<p>:jobs:first`` and ``<p>:jobs`` (streams; consumer group ``workers`` on each). Each entry is one
          sentence to voice and render; a reply's first sentence (due now: nothing plays to hide its wait)
          goes to ``jobs:first``, which workers read before ``jobs``.
Done:     ``<p>:done:<job>`` (SET NX): the job was announced (or failed); a retried job sees it and stays quiet.
Clips:    ``<p>:clip:<job>`` (bytes, TTL): the MP4, written whole in one SET, so a half clip is never served.
Cancel:   ``<p>:cancel:<reply>`` (key, TTL) for jobs still queued; channel ``<p>:cancel`` for renders running.
Events:   ``<p>:events:<session>``, a stream and a channel of the same name. The stream (field ``e``: the
          event, trimmed to ~256 entries, TTL renewed on each write) records what the session's page
          receives, so a page reconnecting to any node catches up; each entry is also published on the
          channel with its stream id as ``id`` (one Lua script: the channel's order is the stream's), which
          wakes the nodes holding the session within a millisecond. The nodes' own bookkeeping messages
          (types starting with ``_``) go on the channel only.
Sessions: ``<p>:session:<id>`` (hash: ``live``, ``voice``; TTL) and ``<p>:history:<id>`` (list, same TTL,
          trimmed): the history as appended entries (a user message, an answer, a forgotten turn) keyed
          by their turn, so two nodes' turns merge instead of overwriting each other.
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

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def jobs_first(self) -> str:
        return f"{self.prefix}:jobs:first"

    @property
    def job_streams(self) -> tuple[str, str]:
        """In the order workers read them."""
        return (self.jobs_first, self.jobs)

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

    def session(self, session: str) -> str:
        return f"{self.prefix}:session:{session}"

    def history(self, session: str) -> str:
        return f"{self.prefix}:history:{session}"

    @property
    def backlog(self) -> str:
        return f"{self.prefix}:backlog"

    def worker(self, name: str = "*") -> str:
        return f"{self.prefix}:worker:{name}"


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> dict[str, Any]:
    return json.loads(raw)
