"""The socket's guard: frame size and rate limits, and binary frames as microphone audio when voice is on.

A refused frame becomes an ``error`` event for the session; the socket lives on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from avatarchat.server.limits import TokenBucket
from avatarchat.settings import Settings

Message = dict[str, Any]


@dataclass
class FrameRefused:
    """A client frame the socket will not act on; the session gets an ``error`` event and the socket lives on."""

    code: str
    message: str


AUDIO_UNIT_BYTES = 960  # 30 ms of 16 kHz mono int16: audio frames are whole multiples of it
AUDIO_BURST_S = 4.0  # seconds of audio a socket may send ahead of real time
AUDIO_RATE = 1.25  # and on average, times real time (network jitter)


class FrameGuard:
    """Per socket: frame size and rate limits; binary frames are microphone audio, when voice input is on."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.ws_max_frame_bytes
        self.voice = settings.voice_enabled
        self.bucket = TokenBucket(4 * settings.ws_frames_per_s, settings.ws_frames_per_s)
        # Audio is metered in 30 ms units, not frames: the page may send small frames often.
        units_per_s = 1000 / 30
        self.audio_bucket = TokenBucket(AUDIO_BURST_S * units_per_s, AUDIO_RATE * units_per_s)

    def check(self, message: Message) -> str | bytes | FrameRefused:
        text, data = message.get("text"), message.get("bytes")
        if text is None:
            return self._audio(data or b"")
        if len(text) > self.max_bytes or len(text.encode()) > self.max_bytes:
            return FrameRefused("frame_too_large", f"Frames are limited to {self.max_bytes} bytes.")
        if self.bucket.take():
            return FrameRefused("rate_limited", "Too many frames; this one was dropped.")
        return text

    def _audio(self, data: bytes) -> bytes | FrameRefused:
        if len(data) > self.max_bytes:
            return FrameRefused("frame_too_large", f"Frames are limited to {self.max_bytes} bytes.")
        if not self.voice:
            return FrameRefused("voice_off", "Voice input is turned off on this server; type your message.")
        if not data or len(data) % AUDIO_UNIT_BYTES:
            return FrameRefused("bad_audio", "Audio frames are 16 kHz mono 16-bit little-endian PCM in whole "
                                             f"30 ms units ({AUDIO_UNIT_BYTES} bytes); got {len(data)} bytes.")
        for _ in range(len(data) // AUDIO_UNIT_BYTES):
            if self.audio_bucket.take():
                return FrameRefused("rate_limited", "Audio is arriving faster than real time; a frame was dropped.")
        return data


async def receive_frame(websocket: WebSocket, guard: FrameGuard) -> str | bytes | FrameRefused:
    """The next text frame or audio frame, or why the frame that came is refused; raises
    ``WebSocketDisconnect`` on close."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    return guard.check(message)


