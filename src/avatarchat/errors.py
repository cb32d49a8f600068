"""The exceptions avatarchat raises on purpose, each with a stable ``code`` and an HTTP status.

The server maps them to JSON errors (HTTP) and ``error`` events (WebSocket) in one place.
"""

from __future__ import annotations


class AvatarChatError(Exception):
    """Base class: ``code`` is machine-readable, the message says what happened and what to do."""

    code = "internal"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AvatarChatError):
    code = "bad_request"
    status = 422


class TooManySessions(AvatarChatError):
    code = "too_many_sessions"
    status = 503


class QueueFull(AvatarChatError):
    code = "queue_full"
    status = 429


class BackendError(AvatarChatError):
    """A backend (LLM, TTS) failed: unreachable, bad key, quota, malformed answer."""

    code = "backend_error"
    status = 502


class NoFaceError(AvatarChatError):
    code = "no_face"
    status = 422


class Cancelled(AvatarChatError):
    """A job was cancelled (barge-in or shutdown); not shown to users as an error."""

    code = "cancelled"
    status = 409
