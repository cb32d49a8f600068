"""The exceptions avatarchat raises on purpose, each with a stable ``code`` and an HTTP status.

The server maps them to JSON errors (HTTP) and ``error`` events (WebSocket) in one place. An error has two
texts: ``message``, the full detail for the server log (it may quote an upstream body, a URL or a path), and
``public``, what a client may see: ours, short, and free of paths, URLs, upstream bodies and secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PUBLIC_MAX_CHARS = 300


class AvatarChatError(Exception):
    """Base class: ``code`` is machine-readable, the message says what happened and what to do."""

    code = "internal"
    status = 500
    #: What a client sees when the raiser gave no ``public`` text. Subclasses whose messages are built only from
    #: our own words and the user's own input set ``message_is_public``.
    generic = "Something went wrong on the server; the server log has the details."
    message_is_public = False

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self._public = public

    @property
    def public(self) -> str:
        """The text for clients: never longer than ``PUBLIC_MAX_CHARS``."""
        text = self._public or (self.message if self.message_is_public else self.generic)
        return text if len(text) <= PUBLIC_MAX_CHARS else text[: PUBLIC_MAX_CHARS - 1] + "…"


class BadRequest(AvatarChatError):
    code = "bad_request"
    status = 422
    message_is_public = True


class UnknownSession(AvatarChatError):
    """No session has this token: it expired, the server restarted, or it was never issued."""

    code = "unknown_session"
    status = 404
    message_is_public = True


class TooManySessions(AvatarChatError):
    code = "too_many_sessions"
    status = 503
    message_is_public = True


class ShuttingDown(AvatarChatError):
    """The server is stopping (SIGTERM): the message was not taken."""

    code = "shutting_down"
    status = 503
    message_is_public = True


class TooManyForClient(AvatarChatError):
    """One client address holds as many sessions as it may (``max_sessions_per_client``)."""

    code = "too_many_sessions_for_client"
    status = 429
    message_is_public = True


class StoreUnavailable(AvatarChatError):
    """Redis mode: the shared store (Redis) cannot be reached right now."""

    code = "store_unavailable"
    status = 503
    generic = "The server cannot reach its shared store right now; try again in a few seconds."


class QueueFull(AvatarChatError):
    code = "queue_full"
    status = 429
    message_is_public = True


class BackendError(AvatarChatError):
    """A backend (LLM, TTS) failed: unreachable, bad key, quota, malformed answer."""

    code = "backend_error"
    status = 502
    generic = "A backend service (language model or speech) failed; the server log has the details."


class NoFaceError(AvatarChatError):
    code = "no_face"
    status = 422
    generic = "No usable face was found in the avatar media."


class UploadRefused(AvatarChatError):
    """An uploaded avatar file was refused before anything trusted it; ``code`` says why (``not_media``,
    ``too_many_pixels``, ``no_face``, ``several_faces``, ...) and the message what to send instead."""

    status = 422
    message_is_public = True

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class UnknownAvatar(AvatarChatError):
    """No avatar this session may use has this id (another session's is unknown too: ids leak nothing)."""

    code = "unknown_avatar"
    status = 404
    message_is_public = True


class ConfigError(AvatarChatError):
    """The server cannot start as configured (a missing binary, an unknown voice in settings, a bad key)."""

    code = "config_error"
    status = 500


class Cancelled(AvatarChatError):
    """A job was cancelled (barge-in or shutdown); not shown to users as an error."""

    code = "cancelled"
    status = 409
    message_is_public = True


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one error envelope of every HTTP answer: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": code, "message": message}}


_URL_SECRET = re.compile(r"(?i)\b(key|token|api_key|access_token|sig|signature)=[^&\s\"'<>]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secret values, ``key=...`` query parameters and bearer tokens masked (for logs)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    text = _URL_SECRET.sub(lambda m: f"{m.group(1)}=***", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
