"""Awaiting a piece of a reply's work so that a barge-in stops it at once, whatever it is waiting on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from avatarchat.pipeline.reply import Reply

T = TypeVar("T")


class ReplyCancelled(Exception):
    """The reply was cancelled while its work was running or waiting; the work was cancelled too."""


async def unless_cancelled(reply: Reply, work: Awaitable[T]) -> T:
    """Await ``work`` unless the reply is cancelled first; then ``work`` is cancelled too (which kills an
    espeak-ng child in flight, or gives up a place in the scheduler's queue)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.create_task(reply.wait_cancelled())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ReplyCancelled
    return task.result()
