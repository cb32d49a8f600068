"""Process-wide native settings (runtime.py): every process that renders or voices runs BLAS and OpenCV on the
calling thread only, so eight speaking sessions do not pay for thread pools spinning beside each other."""

from __future__ import annotations

import cv2

from avatarchat.runtime import blas_threads, single_threaded_natives


def test_single_threaded_natives_leaves_one_thread_to_blas_and_to_opencv() -> None:
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)  # as a fresh process on a 2-core machine starts
    try:
        single_threaded_natives()
        assert cv2.getNumThreads() == 1
        assert set(blas_threads()) <= {1}
    finally:
        cv2.setNumThreads(before)
