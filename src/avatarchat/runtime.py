"""Process-wide native settings that must hold before any render, calibration or TTS thread starts.

OpenBLAS (numpy's, scipy's) keeps one pool of worker threads for the whole process and is not safe to enter
from several Python threads at once: with two renders and a voice calibration running side by side, the three
callers spun forever inside its thread server (seen with 4 sessions speaking Korean: every render stopped,
``/healthz`` still said ok). avatarchat parallelises across sessions instead, so BLAS gets one thread: each
call then runs in its caller's thread, with nothing shared. Our BLAS calls are tiny (3x3 inverses, one MFCC
matrix product per sentence), so nothing is lost.

OpenCV keeps a thread pool of its own, one thread per core, for the colour conversion and the remaps of each
frame. It bought nothing here: the render and the encode of a clip already run in two threads of their own
(pipeline/ahead.py), so an idle server's 1.6 s clip took 135 ms with it and 132 ms without, while it cost 12 %
more CPU (202 against 181 ms) and 0.66 ms more per frame in the encode alone (1.98 against 1.32), CPU that 8
speaking sessions do not have. So OpenCV gets one thread too.
"""

from __future__ import annotations

import logging

import cv2
from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)


def single_threaded_blas() -> None:
    """Limit every loaded BLAS library to one thread (idempotent; call it before starting worker threads)."""
    controller = ThreadpoolController()
    busy = [p for p in controller.info() if p.get("user_api") == "blas" and p.get("num_threads", 1) != 1]
    if busy:
        controller.limit(limits=1, user_api="blas")
        log.info("BLAS limited to one thread per caller (%s)", ", ".join(p["internal_api"] for p in busy))


def single_threaded_opencv() -> None:
    """OpenCV's calls run in their caller's thread (see above)."""
    cv2.setNumThreads(1)


def single_threaded_natives() -> None:
    """Both of the above: call it in every process that renders, voices or calibrates, before its threads start."""
    single_threaded_blas()
    single_threaded_opencv()


def blas_threads() -> list[int]:
    """Thread counts of the loaded BLAS libraries (for health checks and tests)."""
    return [p["num_threads"] for p in ThreadpoolController().info() if p.get("user_api") == "blas"]
