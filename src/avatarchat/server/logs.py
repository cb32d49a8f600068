"""uvicorn's logging, with the secrets that travel in URLs masked.

The socket carries its session token and, for non-browser clients, the access key in its query string
(``/ws?session_id=…&key=…``), and uvicorn's access and socket lines print the whole URL: anyone who could
read the log could take over a session or the server. ``MaskSecrets`` rewrites those query values to ``***``
before a line is written; ``log_config`` is uvicorn's own configuration with the filter on both handlers.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

#: Query parameters whose values are secrets.
SECRET_PARAMS = ("session_id", "key", "access_key", "token")
_SECRET = re.compile(r"([?&](?:" + "|".join(SECRET_PARAMS) + r")=)[^&\s\"]*", re.IGNORECASE)


def mask(text: str) -> str:
    """``/ws?session_id=abc&key=k`` -> ``/ws?session_id=***&key=***``."""
    return _SECRET.sub(r"\1***", text)


class MaskSecrets(logging.Filter):
    """Masks secret query values in a record's message arguments (uvicorn logs URLs as arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = mask(record.msg)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with ``MaskSecrets`` on its handlers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_secrets"] = {"()": MaskSecrets}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("mask_secrets")
    return config
