"""Sessions' shared state in Redis (the ``SessionStore`` of Redis mode), stored so that writes merge.

A hash ``<p>:session:<id>`` (``live``, ``voice``) says the session exists; a list ``<p>:history:<id>`` holds
its history entries (see pipeline/history.py), appended with RPUSH and trimmed with LTRIM in one MULTI, so
two nodes saving one session at the same moment both keep their turns. Both keys, and the hash of the session's
uploaded avatars (distributed/avatar_store.py), expire ``ttl_s`` after the session's last save.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from avatarchat.distributed.keys import Keys, dumps, loads
from avatarchat.distributed.outage import reachable

ENTRIES_PER_TURN = 4  # a user message and its answer, plus room for a replaced answer or a forgotten turn
UNLIMITED_ENTRIES = 1000  # history_turns = 0 (no turn limit): the token budget trims; this bounds Redis


class RedisSessionStore:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: float, history_turns: int) -> None:
        self._redis, self._keys = redis, keys
        self._ttl_s = int(max(1, ttl_s))
        self._cap = history_turns * ENTRIES_PER_TURN if history_turns else UNLIMITED_ENTRIES

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """``{"voice", "history": entries}``, or None when no node has the session (never issued, or expired)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(self._keys.session(session_id))
        pipe.lrange(self._keys.history(session_id), 0, -1)
        fields, raw = await reachable(pipe.execute())
        if not fields:
            return None
        voice, avatar = fields.get(b"voice"), fields.get(b"avatar")
        return {"voice": voice.decode() if voice else None, "avatar": avatar.decode() if avatar else None,
                "history": _entries(raw)}

    async def save(self, session_id: str, changes: dict[str, Any]) -> None:
        """Append ``changes["history"]`` and set ``changes["voice"]`` and ``changes["avatar"]`` (when given; an
        empty avatar is the default); renew both TTLs."""
        state, history = self._keys.session(session_id), self._keys.history(session_id)
        fields = {"live": 1, **({"voice": changes["voice"]} if changes.get("voice") else {}),
                  **({"avatar": changes["avatar"]} if "avatar" in changes else {})}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(state, mapping=fields)
        pipe.expire(state, self._ttl_s)
        if changes["history"]:
            pipe.rpush(history, *[dumps(e) for e in changes["history"]])
            pipe.ltrim(history, -self._cap, -1)
        pipe.expire(history, self._ttl_s)
        pipe.expire(self._keys.avatars(session_id), self._ttl_s)  # its uploads live as long as it does
        await reachable(pipe.execute())


def _entries(raw: list[bytes]) -> list[dict[str, Any]]:
    """Entries as stored; one that does not parse is skipped (``rebuild`` checks the shape of the rest)."""
    entries = []
    for item in raw:
        try:
            entry = loads(item)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
