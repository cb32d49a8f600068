"""Loading avatar media: an image, or the first seconds of a short video, as RGB frames of a bounded size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avatarchat.errors import BadRequest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".m4v"}


def scaled_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """(width, height) a picture of ``h`` x ``w`` is scaled to by ``fit``, before its crop to even sides."""
    scale = min(1.0, max_side / max(h, w))
    return (int(round(w * scale)), int(round(h * scale))) if scale < 1.0 else (w, h)


def fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Scale down (never up) so the long side is at most ``max_side``; crop to even sides (H.264 needs them)."""
    h, w = rgb.shape[:2]
    size = scaled_size(h, w, max_side)
    if size != (w, h):
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])


def load_image(path: Path, max_side: int) -> np.ndarray:
    """RGB uint8 of at most ``max_side`` pixels on the long side."""
    if not path.is_file():
        raise BadRequest(f"Avatar image {path} does not exist.")
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise BadRequest(f"Avatar image {path} could not be decoded; is it a valid picture?")
    return fit(bgr[:, :, ::-1], max_side)


def load_video(path: Path, max_side: int, max_seconds: float = 10.0, fps: int = 25) -> np.ndarray:
    """(n, h, w, 3) RGB frames resampled to ``fps``, at most ``max_seconds`` long."""
    import av

    if not path.is_file():
        raise BadRequest(f"Avatar video {path} does not exist.")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            next_t = 0.0
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else next_t
                if t + 1e-6 < next_t:
                    continue  # resample to our frame rate by dropping early frames
                if t >= max_seconds:
                    break
                frames.append(fit(frame.to_ndarray(format="rgb24"), max_side))
                next_t += 1.0 / fps
    except (av.error.FFmpegError, IndexError) as exc:
        raise BadRequest(f"Avatar video {path} could not be decoded: {exc}") from exc
    if len(frames) < 2:
        raise BadRequest(f"Avatar video {path} has fewer than 2 frames; use an image instead.")
    return np.stack(frames)


def load_media(path: Path, max_side: int) -> np.ndarray:
    """Frames of an avatar: (1, h, w, 3) for an image, (n, h, w, 3) for a video."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return load_image(path, max_side)[None]
    if suffix in VIDEO_SUFFIXES:
        return load_video(path, max_side)
    raise BadRequest(f"Avatar {path} must be an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a short video "
                     f"({', '.join(sorted(VIDEO_SUFFIXES))}).")


def save_image(path: Path, rgb: np.ndarray) -> None:
    """Write RGB pixels as a PNG (no metadata: only what was decoded)."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise BadRequest(f"Could not write {path}.")
