"""Uploaded avatars in Redis (the ``SharedAvatars`` of avatars/shared.py), so every web node and every worker
can use an avatar whichever node took the upload.

One hash per session, ``<p>:avatars:<session>``: for each avatar ``m:<id>`` (what GET /avatars lists, JSON),
``s:<id>`` (its source: the checked frames re-encoded, PNG or MP4, at most the upload size limit), ``l:<id>``
(the face landmarks of each of its frames, compressed .npz) and ``p:<id>`` (its preview JPEG). Keyed by the
owning session, an avatar is found only through that session, so privacy holds on every node without a check
that could be forgotten. The hash expires with the session: it gets the session's
TTL when written, and the session store renews both together (distributed/session_store.py).
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from avatarchat.distributed.keys import Keys, dumps
from avatarchat.distributed.outage import reachable

# Add an avatar unless the session already holds ARGV[1]; 1 when added. KEYS[1]: the session's avatars hash.
PUT = """
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'm:' then n = n + 1 end
end
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'm:' .. ARGV[3], ARGV[4], 's:' .. ARGV[3], ARGV[5], 'p:' .. ARGV[3], ARGV[6],
           'l:' .. ARGV[3], ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class RedisAvatarStore:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: float, max_bytes: int) -> None:
        """``max_bytes``: the largest source stored (the upload limit); a bigger one is a bug, never stored."""
        self._redis, self._keys = redis, keys
        self._ttl_s = int(max(1, ttl_s))
        self._max_bytes = max_bytes
        self._put = redis.register_script(PUT)

    async def put(self, session: str, avatar_id: str, meta: dict, source: bytes, landmarks: bytes, preview: bytes,
                  most: int) -> bool:
        if len(source) > self._max_bytes:
            raise ValueError(f"an avatar source of {len(source)} bytes is over the {self._max_bytes} limit")
        added = await reachable(self._put(keys=[self._keys.avatars(session)],
                                          args=[most, self._ttl_s, avatar_id, dumps(meta), source, preview,
                                                landmarks]))
        return bool(added)

    async def count(self, session: str) -> int:
        fields = await reachable(self._redis.hkeys(self._keys.avatars(session)))
        return sum(1 for f in fields if f.startswith(b"m:"))

    async def metas(self, session: str) -> list[dict]:
        key = self._keys.avatars(session)
        fields = [f for f in await reachable(self._redis.hkeys(key)) if f.startswith(b"m:")]
        raw = await reachable(self._redis.hmget(key, fields)) if fields else []
        metas = [json.loads(r) for r in raw if r is not None]
        return sorted(metas, key=lambda m: m.get("created", 0.0))

    async def exists(self, session: str, avatar_id: str) -> bool:
        return bool(await reachable(self._redis.hexists(self._keys.avatars(session), f"m:{avatar_id}")))

    async def source(self, session: str, avatar_id: str) -> tuple[dict, bytes, bytes | None] | None:
        meta, source, landmarks = await reachable(self._redis.hmget(
            self._keys.avatars(session), f"m:{avatar_id}", f"s:{avatar_id}", f"l:{avatar_id}"))
        if meta is None or source is None:
            return None
        return json.loads(meta), source, landmarks

    async def preview(self, session: str, avatar_id: str) -> bytes | None:
        return await reachable(self._redis.hget(self._keys.avatars(session), f"p:{avatar_id}"))

    async def delete(self, session: str, avatar_id: str) -> bool:
        gone = await reachable(self._redis.hdel(self._keys.avatars(session), f"m:{avatar_id}", f"s:{avatar_id}",
                                                f"p:{avatar_id}", f"l:{avatar_id}"))
        return bool(gone)
