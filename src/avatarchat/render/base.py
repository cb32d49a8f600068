"""The renderer contract: register an avatar once, then turn speech into frames of that avatar speaking.

``Renderer`` is the base every backend subclasses, so the contract is checked when a backend is defined rather
than when the server first calls a missing method. Three methods are required; ``warm_up`` and ``aclose`` are
lifecycle hooks with no-op defaults for backends that have nothing to load ahead of time or to release. Optional
capabilities are protocols (``VoiceCalibrated``), checked with ``isinstance`` by whoever can use them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from avatarchat.data import Speech

FPS = 25


@dataclass(frozen=True)
class Avatar:
    """A registered avatar: its frames (one for an image, several for a video) with 478 face-mesh landmarks
    per frame (x, y in pixels, z), and a stable id derived from the content."""

    id: str
    frames: np.ndarray  # (n, h, w, 3) RGB uint8
    frame_landmarks: np.ndarray  # (n, 478, 3)

    @property
    def image(self) -> np.ndarray:
        """The rest frame: clips and the idle loop start and end on it."""
        return self.frames[0]

    @property
    def landmarks(self) -> np.ndarray:
        return self.frame_landmarks[0]

    @property
    def is_video(self) -> bool:
        return len(self.frames) > 1

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.frames.shape[1:3]
        return w, h


class Renderer(ABC):
    """A lip-sync backend. Subclasses set ``name`` and ``fps`` and implement the three abstract methods."""

    name: str
    fps: int = FPS

    @abstractmethod
    def register(self, media: Path) -> Avatar:
        """The avatar in an image or short video (see render/avatar.py for the shared implementation)."""

    @abstractmethod
    def idle_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
        """A loop that starts and ends on the rest frame (so clips and idle hand over without a jump)."""

    def listening_frames(self, avatar: Avatar) -> Iterator[np.ndarray]:
        """The loop shown while the person speaks (eyes on the camera, attentive); also starts and ends on the
        rest frame. Backends without one listen with their idle loop."""
        return self.idle_frames(avatar)

    @abstractmethod
    def render(self, avatar: Avatar, speech: Speech, cancel: threading.Event | None = None,
               voice: str | None = None) -> Iterator[np.ndarray]:
        """Exactly ``frame_count(speech)`` RGB frames at ``fps``; raises ``Cancelled`` once ``cancel`` is set.
        ``voice`` names the TTS voice, for renderers that calibrate mouth shapes per voice."""

    def forget(self, avatar: Avatar) -> None:
        """Drop what was built for ``avatar`` (an uploaded avatar whose session is gone); it may come back."""

    def warm_up(self) -> None:
        """Load models or build caches before the first request (blocking; run it off the event loop)."""

    async def aclose(self) -> None:
        """Release what the renderer holds (processes, GPU memory) when the server stops."""


@runtime_checkable
class VoiceCalibrated(Protocol):
    """Renderers that learn a voice's mouth shapes from a few words it says (see render/visemes.py)."""

    def calibration_words(self, voice: str | None) -> dict[str, str]: ...

    def is_calibrated(self, voice: str | None) -> bool: ...

    def calibrate(self, voice: str | None, samples: dict[str, Speech]) -> None: ...


def frame_count(duration_s: float, fps: int = FPS) -> int:
    """Frames needed to cover ``duration_s`` (at least one)."""
    return max(1, int(np.ceil(duration_s * fps - 1e-9)))
