"""Checking an uploaded avatar file before anything trusts it: the real format from the bytes, size and pixel
limits read from the header before a pixel is decoded, no data hidden after the picture, decoding with a
deadline, EXIF orientation applied and every byte of metadata dropped (only decoded pixels go on), and a
frame that shows exactly one face, big and bright enough to animate.

No web framework here: the server hands bytes in and gets frames or an ``UploadRefused`` (a ``code`` and a
message that says what to send instead) back. Everything is blocking; callers run it off the event loop.
"""

from __future__ import annotations

import io
import struct
import time
from dataclasses import dataclass

import numpy as np

from avatarchat.errors import UploadRefused
from avatarchat.render.landmarks import FACE_LEFT, FACE_OVAL, FACE_RIGHT
from avatarchat.render.media import fit

IMAGE_KINDS = ("jpeg", "png", "webp")
VIDEO_KINDS = ("mp4", "mov", "webm")
PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
VIDEO_FORMATS = {"mp4": "mov", "mov": "mov", "webm": "matroska"}  # the demuxer PyAV must agree it is
JPEG_TRAILER_SLACK = 64  # a few padding bytes after a JPEG's end marker are common; a second file is not
DARK_LUMA = 40.0  # mean brightness (0-255) of the face below which the picture is too dark to animate
WHAT_TO_SEND = "Send a photo (JPEG, PNG or WebP) or a short video (MP4, WebM or MOV) of one face."


@dataclass(frozen=True)
class Limits:
    """What an upload may be; every number is a setting (see the README)."""

    max_bytes: int = 25_000_000
    max_pixels: int = 36_000_000  # width x height of a photo, read from its header
    max_side_px: int = 12_000  # either side of a photo
    max_video_s: float = 10.0
    max_video_side: int = 1920  # either side of a video frame
    out_side: int = 512  # frames are scaled to this long side (the renderer's), which bounds memory
    fps: int = 25
    timeout_s: float = 15.0  # decoding must finish within this
    min_face_px: int = 64  # face width in the scaled frame


@dataclass(frozen=True)
class Media:
    kind: str  # one of IMAGE_KINDS or VIDEO_KINDS
    frames: np.ndarray  # (n, h, w, 3) RGB uint8, at most ``out_side`` on the long side; n == 1 for a photo

    @property
    def is_video(self) -> bool:
        return self.kind in VIDEO_KINDS


def sniff(data: bytes) -> str:
    """The format the bytes really are (magic numbers; the file name and content type are never asked)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[4:8] == b"ftyp":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if data[4:8] in (b"moov", b"wide", b"mdat", b"free"):  # QuickTime files without an ftyp box
        return "mov"
    raise UploadRefused("not_media", f"This file is not a picture or a video we can read. {WHAT_TO_SEND}", 415)


def read_upload(data: bytes, limits: Limits) -> Media:
    """Decoded frames of an uploaded photo or video, every limit checked (raises ``UploadRefused``)."""
    deadline = time.monotonic() + limits.timeout_s
    if len(data) > limits.max_bytes:
        raise UploadRefused("too_large", f"The file is {len(data) / 1e6:.1f} MB; the limit is "
                                         f"{limits.max_bytes / 1e6:.0f} MB. Send a smaller photo or a shorter video.",
                            413)
    if not data:
        raise UploadRefused("empty", f"The file is empty. {WHAT_TO_SEND}")
    kind = sniff(data)
    if kind in IMAGE_KINDS:
        check_trailer(kind, data)
        return Media(kind, read_image(kind, data, limits)[None])
    return Media(kind, read_video(kind, data, limits, deadline))


def check_trailer(kind: str, data: bytes) -> None:
    """Refuse a picture with something after its end (a polyglot: a picture that is also a script or an archive)."""
    end = _image_end(kind, data)
    if len(data) - end > (JPEG_TRAILER_SLACK if kind == "jpeg" else 1):
        raise UploadRefused("trailing_data", "The file holds more than a picture (data after its end, as in a file "
                                             "that is two files in one). Save the picture again as a plain JPEG, "
                                             "PNG or WebP and send that.")


def _image_end(kind: str, data: bytes) -> int:
    if kind == "jpeg":
        eoi = data.rfind(b"\xff\xd9")
        return len(data) if eoi < 0 else eoi + 2  # no end marker: truncated, which decoding reports
    if kind == "webp":
        return 8 + struct.unpack("<I", data[4:8])[0]
    pos = 8  # png: walk the chunks to IEND
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        pos += 12 + length
        if ctype == b"IEND":
            return pos
    return len(data)


def read_image(kind: str, data: bytes, limits: Limits) -> np.ndarray:
    """RGB pixels upright (EXIF orientation applied), metadata gone, scaled to ``out_side``. The size is read
    from the header and checked before anything is decoded: a header that claims 20000 x 20000 allocates nothing."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data), formats=[PIL_FORMAT[kind]]) as img:
            w, h = img.size
            if w * h > limits.max_pixels or max(w, h) > limits.max_side_px:
                raise _too_many_pixels(w, h, limits)
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError:  # Pillow's own guard, far above ours, in case a header lies twice
        raise UploadRefused("too_many_pixels", f"The picture is too large to decode. {_smaller(limits)}",
                            413) from None
    except UploadRefused:
        raise
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        truncated = "truncated" in str(exc).lower() or isinstance(exc, EOFError)
        raise UploadRefused("truncated" if truncated else "undecodable",
                            ("The picture is cut short (the upload or the file is incomplete); send the whole file."
                             if truncated else f"The picture could not be decoded. {WHAT_TO_SEND}")) from None
    return fit(np.ascontiguousarray(rgb), limits.out_side)


def _too_many_pixels(w: int, h: int, limits: Limits) -> UploadRefused:
    return UploadRefused("too_many_pixels", f"The picture is {w} x {h} pixels. {_smaller(limits)}", 413)


def _smaller(limits: Limits) -> str:
    return (f"Send one of at most {limits.max_pixels / 1e6:.0f} megapixels and {limits.max_side_px} pixels a side "
            "(a phone photo is fine).")


def read_video(kind: str, data: bytes, limits: Limits, deadline: float) -> np.ndarray:
    """Frames resampled to ``fps``: the container's stream info (frame size, length) is checked before the first
    frame is decoded, at most ``max_video_s`` of frames are decoded, and never past ``deadline``."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if VIDEO_FORMATS[kind] not in container.format.name.split(","):
                raise UploadRefused("not_media", f"This file is not a video we can read. {WHAT_TO_SEND}", 415)
            if not container.streams.video:
                raise UploadRefused("no_video", "The file has no video in it. Send a short video of your face.")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            _check_frame_size(ctx.width, ctx.height, limits)
            length = _length_s(container, stream)
            if length is not None and length > limits.max_video_s + 0.5:
                raise UploadRefused("too_long", f"The video is {length:.0f} s long; the limit is "
                                                f"{limits.max_video_s:.0f} s. Trim it and send it again.", 413)
            stream.thread_type = "AUTO"
            return _decode(container, stream, limits, deadline)
    except UploadRefused:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise UploadRefused("undecodable", f"The video could not be decoded ({type(exc).__name__}). "
                                           f"{WHAT_TO_SEND}") from None


def _check_frame_size(w: int, h: int, limits: Limits) -> None:
    if w <= 0 or h <= 0 or max(w, h) > limits.max_video_side:
        raise UploadRefused("too_many_pixels", f"The video's frames are {w} x {h}; the limit is "
                                               f"{limits.max_video_side} pixels a side. Send it at 1080p or less.",
                            413)


def _length_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _decode(container, stream, limits: Limits, deadline: float) -> np.ndarray:
    frames: list[np.ndarray] = []
    want = int(limits.max_video_s * limits.fps)
    budget = 8 * want  # raw frames decoded at most (a 200 fps video still stops)
    next_t = 0.0
    for i, frame in enumerate(container.decode(stream)):
        if time.monotonic() > deadline:
            raise UploadRefused("too_slow", f"The video took longer than {limits.timeout_s:.0f} s to decode. "
                                            "Send a shorter or smaller video (1080p, H.264).", 422)
        if i >= budget or len(frames) >= want:
            break
        _check_frame_size(frame.width, frame.height, limits)  # a stream may change size mid-way
        t = float(frame.time) if frame.time is not None else next_t
        if t + 1e-6 < next_t:
            continue  # resample to our frame rate by dropping early frames
        if t >= limits.max_video_s:
            break
        frames.append(fit(frame.to_ndarray(format="rgb24"), limits.out_side))
        next_t += 1.0 / limits.fps
    if len(frames) < 2:
        raise UploadRefused("too_short", "The video has fewer than 2 frames; send a photo instead.")
    if len({f.shape for f in frames}) > 1:
        raise UploadRefused("undecodable", "The video changes its frame size; send one recorded in a single size.")
    return np.stack(frames)


def face_box(faces: list[np.ndarray], rgb: np.ndarray, min_face_px: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the one face in ``rgb`` (``faces``: every face mesh found in it), or the reason this
    frame cannot be an avatar: no face, several, too small, too dark."""
    if not faces:
        raise UploadRefused("no_face", "No face was found. Send a front-facing photo where one face is clearly "
                                       "visible, in good light.")
    if len(faces) > 1:
        raise UploadRefused("several_faces", f"{len(faces)} faces were found; the avatar needs exactly one. Crop "
                                             "the picture to one face and send it again.")
    lm = faces[0]
    oval = lm[FACE_OVAL, :2]
    x0, y0 = np.floor(oval.min(axis=0)).astype(int)
    x1, y1 = np.ceil(oval.max(axis=0)).astype(int)
    width = float(abs(lm[FACE_RIGHT, 0] - lm[FACE_LEFT, 0]))
    if width < min_face_px:
        raise UploadRefused("too_small", f"The face is only {width:.0f} pixels wide here (at least {min_face_px} "
                                         "needed). Move closer, or crop the picture around the face.")
    h, w = rgb.shape[:2]
    region = rgb[max(0, y0):min(h, y1), max(0, x0):min(w, x1)].astype(np.float32)
    luma = float((region @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) if region.size else 0.0
    if luma < DARK_LUMA:
        raise UploadRefused("too_dark", "The face is too dark to animate. Take the photo facing a window or a "
                                        "lamp and send it again.")
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
