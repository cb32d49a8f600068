"""Reading OpenAI's error envelope, ``{"error": {"message", "type", "code", "param"}}``, for every OpenAI backend.

The chat LLM and the speech TTS talk to the same vendor (or to servers that copy it: Ollama, vLLM, Kokoro), so
they read its errors with one function and name them the same way in the server log: the HTTP status, the
most specific kind (``code``, else ``type``), the vendor's message, and a hint when the key was refused.
"""

from __future__ import annotations

import json

KEY_HINT = "(check AVATARCHAT_OPENAI_API_KEY)"
BODY_CHARS = 300  # of a body that is not the envelope, quoted as it is


def openai_error_text(body: bytes | str | dict, status: int | None = None, reason: str = "") -> str:
    """An error answer (or an ``{"error": ...}`` event inside a stream, with ``status`` None) -> log text.

    ``401 invalid_api_key: Incorrect API key provided ... (check AVATARCHAT_OPENAI_API_KEY)``;
    ``429 insufficient_quota: You exceeded your current quota ...``; a body that is not the envelope is
    quoted: ``502 Bad Gateway: <html>...``.
    """
    parsed = _envelope(body)
    if parsed is None:
        raw = body if isinstance(body, str) else (json.dumps(body) if isinstance(body, dict)
                                                  else body.decode("utf-8", "replace"))
        head = f"{status} {reason}".strip() if status is not None else ""
        return f"{head}: {raw[:BODY_CHARS]}" if head else raw[:BODY_CHARS]
    message, kind = parsed
    head = " ".join(str(p) for p in (status, kind) if p)
    text = f"{head}: {message}" if head else message
    return f"{text} {KEY_HINT}" if status == 401 else text


def _envelope(body: bytes | str | dict) -> tuple[str, str] | None:
    """(message, code-or-type) from the envelope; None when ``body`` is not one."""
    try:
        obj = body if isinstance(body, dict) else json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, str) and err:  # some compatible servers (older Ollama, llama.cpp) send a bare string
        return err, ""
    if not isinstance(err, dict) or not err.get("message"):
        return None
    return str(err["message"]), str(err.get("code") or err.get("type") or "")
