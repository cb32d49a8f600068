"""Counting what clients send: token buckets for request and frame rates, and how deep a JSON body nests.

Pure functions and small classes, so the middleware and the socket guard share them and tests drive them
without a server.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply ``text`` (JSON) nests arrays and objects, counted without recursing."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``per_s``; a request takes one."""

    capacity: float
    per_s: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, now: float | None = None) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens = self.capacity
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_s)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_s


class RateLimiter:
    """One token bucket per key (a client address, a session), the least recently used forgotten beyond
    ``max_keys`` so a flood of keys cannot grow memory."""

    def __init__(self, per_minute: int, max_keys: int = 10000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def wait_s(self, key: str) -> float:
        """0 if ``key`` may go ahead now, else how long it should wait."""
        if self.per_minute <= 0:
            return 0.0
        bucket = self.buckets.pop(key, None) or TokenBucket(self.per_minute, self.per_minute / 60)
        self.buckets[key] = bucket
        while len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        return bucket.take()


