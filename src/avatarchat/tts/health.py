"""What each TTS backend is doing now: calls in flight (since when) and failures in a row.

``/healthz`` said ok while the primary TTS failed every call and while a hanging cloud TTS made everyone wait;
the voice router records every call here so health can say so (``server/health.py`` reads it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _Backend:
    in_flight: dict[int, float] = field(default_factory=dict)  # call id -> monotonic start
    failures_in_a_row: int = 0
    calls: int = 0


class BackendHealth:
    """Per backend name: calls in flight with their start times, and failures since the last success."""

    def __init__(self) -> None:
        self._backends: dict[str, _Backend] = {}
        self._next = 0

    @contextmanager
    def call(self, backend: str) -> Iterator[None]:
        """Record one call; an exception counts as a failure, a cancellation as neither."""
        b = self._backends.setdefault(backend, _Backend())
        self._next += 1
        key = self._next
        b.in_flight[key] = time.monotonic()
        try:
            yield
        except Exception:
            b.failures_in_a_row += 1
            b.calls += 1
            raise
        else:
            b.failures_in_a_row = 0
            b.calls += 1
        finally:
            b.in_flight.pop(key, None)

    def failures_in_a_row(self, backend: str) -> int:
        b = self._backends.get(backend)
        return b.failures_in_a_row if b else 0

    def oldest_call_s(self, backend: str) -> float:
        """Seconds the longest-running call to ``backend`` has been waiting (0 when none is in flight)."""
        b = self._backends.get(backend)
        if not b or not b.in_flight:
            return 0.0
        return time.monotonic() - min(b.in_flight.values())

    def names(self) -> list[str]:
        return sorted(self._backends)
