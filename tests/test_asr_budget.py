"""The ASR budget on its own: sockets take turns, a newer speculative call supersedes a waiting one, finals come
first and are capped, and a socket that leaves takes its waiting work with it. The recogniser here only records
what it was given and waits for the test to let it finish (the real one is tested in test_voice_ws.py and
tests/security/test_voice_flood.py)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from avatarchat.asr.base import Transcript
from avatarchat.asr.budget import FINALS_WAITING, AsrBudget, Superseded, TooMuchSpeech


class GatedASR:
    name = "gated"

    def __init__(self) -> None:
        self.heard: list[int] = []
        self.gate = threading.Semaphore(0)

    def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        self.heard.append(int(pcm[0]))
        self.gate.acquire(timeout=10)
        return Transcript(text=str(int(pcm[0])), language="en", audio_s=0.1, compute_s=0.0)


def tag(n: int) -> np.ndarray:
    return np.full(10, n, np.int16)


async def settle(budget: AsrBudget, asr: GatedASR, n: int) -> None:
    """Let ``n`` running calls finish, then let the budget start the next ones."""
    for _ in range(n):
        asr.gate.release()
    for _ in range(200):
        await asyncio.sleep(0.005)
        if budget.running == 0 or len(asr.heard) > n:
            break


async def test_a_flooding_socket_gets_one_turn_of_the_round_like_everyone_else() -> None:
    asr = GatedASR()
    budget = AsrBudget(asr, "en", threads=1)
    first = budget.transcribe("flood", tag(1), final=True)
    flood = [budget.transcribe("flood", tag(10 + k), final=True) for k in range(2)]
    victim = budget.transcribe("victim", tag(99), final=True)
    await settle(budget, asr, 1)
    assert (await first).text == "1"
    await settle(budget, asr, 1)
    assert (await victim).text == "99", asr.heard  # before the flood's second final
    await settle(budget, asr, 2)
    assert [int((await f).text) for f in flood] == [10, 11]
    budget.close()


async def test_a_newer_speculative_call_supersedes_the_waiting_one_and_finals_go_first() -> None:
    asr = GatedASR()
    budget = AsrBudget(asr, "en", threads=1)
    running = budget.transcribe("a", tag(1), final=False)
    old = budget.transcribe("b", tag(2), final=False)
    new = budget.transcribe("b", tag(3), final=False)
    final = budget.transcribe("c", tag(4), final=True)
    with pytest.raises(Superseded):
        await old
    assert budget.pending == 2  # b's newest guess and c's final: never more than one guess a socket
    await settle(budget, asr, 1)
    assert (await running).text == "1"
    await settle(budget, asr, 1)
    assert (await final).text == "4"
    await settle(budget, asr, 1)
    assert (await new).text == "3" and asr.heard == [1, 4, 3]
    budget.close()


async def test_finals_waiting_are_capped_and_a_departed_socket_leaves_nothing_queued() -> None:
    asr = GatedASR()
    budget = AsrBudget(asr, "en", threads=1)
    running = budget.transcribe("a", tag(1), final=True)
    waiting = [budget.transcribe("a", tag(2 + k), final=True) for k in range(FINALS_WAITING + 1)]
    with pytest.raises(TooMuchSpeech):
        await waiting[0]
    assert budget.pending == FINALS_WAITING
    budget.forget("a")
    assert budget.pending == 0 and all(f.cancelled() for f in waiting[1:])
    await settle(budget, asr, 1)
    assert (await running).text == "1" and asr.heard == [1]
    budget.close()
