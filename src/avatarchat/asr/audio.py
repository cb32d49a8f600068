"""Audio files (WAV, MP3, MP4, anything FFmpeg reads) -> 16 kHz mono int16, with PyAV (already a dependency)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from avatarchat.asr.base import SAMPLE_RATE
from avatarchat.errors import BadRequest


def read_audio(path: Path) -> np.ndarray:
    """Every audio sample of the file's first audio stream, resampled to 16 kHz mono int16."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise BadRequest(f"{path} has no audio stream.")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            chunks = []
            for frame in container.decode(audio=0):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except (av.error.FFmpegError, OSError) as exc:
        raise BadRequest(f"cannot read audio from {path}: {exc}") from exc
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
