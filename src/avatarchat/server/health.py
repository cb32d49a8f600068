"""``/healthz``: a list of checks, each naming a problem or none; the first problem is the status.

It said ok while the primary TTS failed every call and while a hanging TTS made everyone wait, and it showed
internal addresses and worker names to anyone. Now each concern is one check (``HealthCheck``: add one by
passing it to ``create_app(health_checks=...)``), the answer is 503 when any check names a problem, and the
details go only to callers who may read ``/metrics`` (the security middleware decides; see ``DETAIL_KEY``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from avatarchat.services import Services

#: Set in the request's scope state by the security middleware: may this caller see the details?
DETAIL_KEY = "health_details"
#: Failed calls in a row after which the primary TTS counts as failing (one bad sentence is not an outage).
TTS_FAILING_AFTER = 3


@dataclass(frozen=True)
class Check:
    name: str
    problem: str | None = None  # None: healthy; else the status word ("stalled", "tts_failing", ...)
    detail: dict[str, Any] = field(default_factory=dict)  # merged into the detailed answer


HealthCheck = Callable[[Services], Awaitable[Check]]


async def pipeline_check(s: Services) -> Check:
    """Renders running but none making progress; the backlog and its expected wait."""
    pipeline = s.pipeline.health(s.settings.render_stall_s)
    waiting, wait_s = await s.speech_backlog()  # Redis mode: the cluster's
    pipeline.update(jobs_waiting=waiting, expected_wait_s=round(wait_s, 2))
    return Check("pipeline", "stalled" if pipeline["stalled"] else None, {"pipeline": pipeline})


async def tts_check(s: Services) -> Check:
    """The primary TTS failing every call, or any TTS call waiting past ``tts_stall_s`` (a hung cloud TTS)."""
    health = s.tts.health
    calls = {name: {"failures_in_a_row": health.failures_in_a_row(name),
                    "oldest_call_s": round(health.oldest_call_s(name), 2)} for name in health.names()}
    problem = None
    if any(c["oldest_call_s"] >= s.settings.tts_stall_s for c in calls.values()):
        problem = "tts_stalled"
    elif health.failures_in_a_row(s.tts.primary) >= TTS_FAILING_AFTER:
        problem = "tts_failing"
    return Check("tts", problem, {"tts_calls": calls})


async def backplane_check(s: Services) -> Check:
    """Redis mode: can this node reach Redis, and who renders?"""
    if s.backplane is None:
        return Check("redis")
    detail = await s.backplane.health()
    return Check("redis", None if detail["redis"] == "ok" else "redis_unreachable", detail)


DEFAULT_CHECKS: tuple[HealthCheck, ...] = (pipeline_check, tts_check, backplane_check)


async def report(s: Services, checks: Sequence[HealthCheck], details: bool) -> tuple[int, dict[str, Any]]:
    """HTTP status and body: ``{"status"}`` for the public, the checks and what they saw for the others."""
    results = await asyncio.gather(*(check(s) for check in checks))
    status = next((c.problem for c in results if c.problem), "ok")
    code = 200 if status == "ok" else 503
    if not details:
        return code, {"status": status}
    body: dict[str, Any] = {"status": status, "checks": {c.name: c.problem or "ok" for c in results},
                            "llm": s.llm.name, "tts": s.tts.primary, "voice": s.tts.default_voice,
                            "renderer": s.renderer.name, "avatar": s.avatar.id, "voice_input": s.voice is not None,
                            "sessions": len(s.sessions.sessions), "tasks": len(asyncio.all_tasks()),
                            "warming": s.warming}
    for c in results:
        body.update(c.detail)
    return code, body
