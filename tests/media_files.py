"""Avatar uploads for tests, good and hostile, made from tests/data/grace_hopper.jpg with numpy, cv2 and PyAV."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import av
import cv2
import numpy as np

PHOTO = Path(__file__).resolve().parent / "data" / "grace_hopper.jpg"


def photo_bgr() -> np.ndarray:
    return cv2.imread(str(PHOTO))


def png(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", bgr)[1].tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose data is a few rows (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def two_faces() -> bytes:
    g = photo_bgr()
    return png(np.concatenate([g, g], axis=1))


def small_face() -> bytes:
    canvas = np.full((512, 512, 3), 128, np.uint8)
    s = cv2.resize(photo_bgr(), None, fx=0.3, fy=0.3)
    canvas[100:100 + s.shape[0], 100:100 + s.shape[1]] = s
    return png(canvas)


def dark_face() -> bytes:
    return png((photo_bgr() * 0.12).astype(np.uint8))


def faceless() -> bytes:
    return png(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))


def video(frames: list[np.ndarray], fps: int = 25, codec: str = "libx264", fmt: str = "mp4") -> bytes:
    """Encode RGB frames (even sides) as a video file in memory."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return buf.getvalue()


def photo_video(seconds: float = 2.0, fps: int = 25) -> bytes:
    """The photo, gently drifting, as a short H.264 MP4 (a video avatar)."""
    rgb = photo_bgr()[:, :, ::-1]
    h, w = rgb.shape[:2]
    frames = []
    for k in range(int(seconds * fps)):
        dx = 2.0 * np.sin(2 * np.pi * k / (seconds * fps))
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        frames.append(np.ascontiguousarray(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)))
    return video(frames, fps)


def long_video(seconds: float = 40.0) -> bytes:
    """A tiny but long video: refused from its container's length, before decoding."""
    frame = np.zeros((64, 64, 3), np.uint8)
    return video([frame] * int(seconds * 10), fps=10)


def huge_frames_video() -> bytes:
    """Two frames of 4000 x 2400: refused from the stream's frame size, before decoding."""
    frame = np.zeros((2400, 4000, 3), np.uint8)
    return video([frame, frame], fps=25, codec="mpeg4")
