"""How a failed sentence or reply reaches the page and the log, the same way in every lane and worker.

The page gets an ``error`` event with our short public text (and the ``seq`` it should skip); the log gets the
detail with API keys masked; the failure is counted. A bug (any exception that is not ours) is logged with its
traceback and shown to the page as a generic line.
"""

from __future__ import annotations

import logging

from avatarchat.errors import AvatarChatError, redact
from avatarchat.events import ErrorEvent
from avatarchat.metrics import Metrics
from avatarchat.pipeline.jobs import SpeechJob

log = logging.getLogger(__name__)


def as_failure(exc: BaseException, public: str, where: str) -> AvatarChatError:
    """Our errors as they are; anything else (a bug) logged with its traceback and wrapped with ``public``."""
    if isinstance(exc, AvatarChatError):
        return exc
    log.error("%s failed", where, exc_info=exc)
    return AvatarChatError(f"{type(exc).__name__}: {exc}", public=public)


def error_event(exc: AvatarChatError, *, session: str, reply: str, where: str, metrics: Metrics,
                secrets: tuple[str, ...], job: SpeechJob | None = None, seq: int | None = None,
                message: str | None = None) -> ErrorEvent:
    """Count ``exc``, log its detail, and return the event for the page. With ``job``, the event names that
    sentence and its ``seq``; else ``message`` (default: the error's public text) and ``seq`` as given."""
    metrics.errors.labels(code=exc.code).inc()
    log.warning("%s: %s", where, redact(exc.message, secrets))
    if job is not None:
        seq, message = job.seq, f"Could not voice {job.text[:80]!r}: {exc.public}"
    return ErrorEvent(session=session, reply=reply, seq=seq, code=exc.code, message=message or exc.public)
