"""Frames rendered a few ahead of the encoder, in a thread of their own (pipeline/ahead.py)."""

from __future__ import annotations

import threading
import time

import pytest

from avatarchat.pipeline.ahead import RenderAhead


class Source:
    """A generator that counts what it made, in which thread, and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.made = 0
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def __iter__(self):
        try:
            for i in range(self.n):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise ValueError(f"frame {i} failed")
                self.made += 1
                yield i
        finally:
            self.closed.set()


def _until(check, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.005)
    return check()


def test_items_come_in_order_made_in_another_thread() -> None:
    source = Source(50)
    with RenderAhead(source, depth=3) as ahead:
        assert list(ahead) == list(range(50))
    assert source.threads == {"render-ahead"} and source.closed.is_set()
    assert ahead.waited_s >= 0.0


def test_it_runs_ahead_only_as_far_as_its_depth_while_the_caller_is_busy() -> None:
    source = Source(100)
    with RenderAhead(source, depth=4) as ahead:
        assert next(ahead) == 0
        # The caller holds item 0: four wait in the queue and a sixth is made, blocked on the full queue.
        assert _until(lambda: source.made == 6)
        time.sleep(0.1)
        assert source.made == 6
        assert [next(ahead) for _ in range(5)] == [1, 2, 3, 4, 5]


def test_an_error_while_making_an_item_is_raised_to_the_caller_after_the_items_before_it() -> None:
    source = Source(10, fail_at=3)
    with RenderAhead(source) as ahead:
        got = []
        with pytest.raises(ValueError, match="frame 3 failed"):
            for item in ahead:
                got.append(item)
    assert got == [0, 1, 2]


def test_closing_early_stops_the_thread_and_closes_the_generator_there() -> None:
    source = Source(10_000)
    ahead = RenderAhead(source, depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert not ahead._thread.is_alive() and source.closed.is_set()
    assert source.made < 10
    with pytest.raises(StopIteration):
        next(ahead)
