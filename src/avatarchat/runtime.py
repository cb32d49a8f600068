"""Process-wide native settings that must hold before any render, calibration or TTS thread starts.

OpenBLAS (numpy's, scipy's) keeps one pool of worker threads for the whole process and is not safe to enter
from several Python threads at once: with two renders and a voice calibration running side by side, the three
callers spun forever inside its thread server (seen with 4 sessions speaking Korean: every render stopped,
``/healthz`` still said ok). avatarchat parallelises across sessions instead, so BLAS gets one thread: each
call then runs in its caller's thread, with nothing shared. Our BLAS calls are tiny (3x3 inverses, one MFCC
matrix product per sentence), so nothing is lost.
"""

from __future__ import annotations

import logging

from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)


def single_threaded_blas() -> None:
    """Limit every loaded BLAS library to one thread (idempotent; call it before starting worker threads)."""
    controller = ThreadpoolController()
    busy = [p for p in controller.info() if p.get("user_api") == "blas" and p.get("num_threads", 1) != 1]
    if busy:
        controller.limit(limits=1, user_api="blas")
        log.info("BLAS limited to one thread per caller (%s)", ", ".join(p["internal_api"] for p in busy))


def blas_threads() -> list[int]:
    """Thread counts of the loaded BLAS libraries (for health checks and tests)."""
    return [p["num_threads"] for p in ThreadpoolController().info() if p.get("user_api") == "blas"]
