"""Frames rendered in a thread of their own, a few ahead of the encoder that takes them.

Rendering and encoding a clip in one thread, frame by frame, leaves the second core idle while a reply's first
clip is made, and that clip is what the person waits for: render (~3 ms a frame) and x264 (~2 ms) then add up.
numpy, OpenCV and libx264 release the GIL in their loops, so with the frames produced in a second thread the
two overlap: a 2.6 s clip took 212 ms instead of 301 (medians of 8, idle 2-core Xeon). On a busy server the
other core has other work and nothing is gained or lost but a thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

DEPTH = 4  # frames rendered ahead: enough to ride out the encoder's uneven steps, a few hundred KB each
_POLL_S = 0.1


class RenderAhead(Generic[T]):
    """Iterates ``items`` in a daemon thread, at most ``depth`` ahead of the caller. An exception there is raised
    here, at the item where it happened. ``close`` (always call it: ``with``) stops the thread at its next item
    and waits for it, so an abandoned clip leaves no rendering behind."""

    def __init__(self, items: Iterable[T], depth: int = DEPTH) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(max(1, depth))
        self._closed = threading.Event()
        self.waited_s = 0.0  # the caller's time waiting for an item not yet made
        self._thread = threading.Thread(target=self._run, name="render-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[str, object]) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        items = iter(self._items)
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator is closed in the thread that ran it

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed.is_set():
            raise StopIteration
        try:
            kind, value = self._queue.get_nowait()
        except queue.Empty:
            t0 = time.perf_counter()
            kind, value = self._queue.get()
            self.waited_s += time.perf_counter() - t0
        if kind == "item":
            return value  # type: ignore[return-value]
        self._closed.set()
        if kind == "error":
            raise value  # type: ignore[misc]
        raise StopIteration

    def close(self, timeout_s: float = 5.0) -> None:
        self._closed.set()
        while True:  # free a producer blocked on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout_s)

    def __enter__(self) -> RenderAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
