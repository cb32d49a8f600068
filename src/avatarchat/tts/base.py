"""The TTS contract: text in, 16-bit mono PCM (plus phoneme timings where the engine has them) out; and the WAV
reader the backends that receive WAV share.

``TTS`` is a base class rather than a Protocol so that the optional parts of the life cycle (``warm_up`` at
start, ``aclose`` at shutdown) have no-op defaults every backend inherits: the server and ``VoiceRouter`` call
them on any TTS without probing for them.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from avatarchat.data import Speech
from avatarchat.errors import BackendError


@dataclass(frozen=True)
class VoiceLabel:
    """What a person choosing a voice reads: a name, its language, gender where known, and how it sounds
    (``natural``: neural; ``robotic``: formant synthesis). ``group`` sets voices apart in a picker (espeak-ng's
    ~130 languages go under their own heading)."""

    label: str
    language_name: str | None = None
    gender: str | None = None  # "female", "male" or None (unknown)
    tier: str | None = None  # "natural", "robotic" or None (unknown)
    group: str | None = None


class TTS(ABC):
    """A speech backend; subclasses set ``name`` (the settings name, such as ``piper``) and ``default_voice``."""

    name: str
    default_voice: str
    #: Waits on a remote service, not on this machine's CPU: its calls run outside the CPU work slots, with
    #: the voice router's own limit on calls at once (a hanging cloud TTS once held a slot for its timeout).
    network_bound: bool = False

    @abstractmethod
    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        """Speak ``text`` with ``voice`` (one of ``voices()``; None: ``default_voice``). An unknown voice is
        ``BadRequest``; a failing engine or service is ``BackendError``."""

    async def synthesize_alone(self, text: str, voice: str | None = None) -> Speech:
        """``synthesize`` when nothing else on this machine is using the CPU (a reply's first chunk on an idle
        server, which the person is waiting for): a backend whose engine can spread one call over more cores
        does. Default: ``synthesize``."""
        return await self.synthesize(text, voice)

    @abstractmethod
    def voices(self) -> list[str]:
        """The voice names requests may use (blocking; cheap after the first call)."""

    def describe(self, voice: str) -> VoiceLabel:
        """A listed voice's human label (blocking; cheap after ``voices()``). Default: its name, nothing known."""
        return VoiceLabel(label=voice)

    def warm_up(self) -> None:
        """Blocking start-up work (load the default voice, check the binary or the configured voice); the server
        runs it in a worker thread before it accepts requests. Configuration problems raise ``ConfigError``.
        Default: nothing."""

    def preload(self, voices: list[str] | None = None) -> None:
        """Slow loading of ``voices`` (None: ``default_voice``) that need not hold up start-up (blocking): the
        server runs it in a worker thread once it is ready, so the first reply in a default voice does not pay
        for it. Failures raise; the server logs them and the voice loads on first use. Default: nothing."""

    async def aclose(self) -> None:
        """Release connections, processes and other resources at shutdown. Default: nothing."""


WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# KSDATAFORMAT_SUBTYPE_PCM, {00000001-0000-0010-8000-00aa00389b71}, as it is stored in a WAV header.
PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")


@dataclass(frozen=True)
class WavFormat:
    channels: int
    sample_rate: int
    bits: int


def speech_from_wav(data: bytes, who: str) -> Speech:
    """16-bit PCM WAV bytes -> ``Speech`` (mixed down to mono).

    We read the RIFF chunks ourselves rather than with Python's ``wave``, which (before 3.12) refuses
    ``WAVE_FORMAT_EXTENSIBLE`` headers (tag ``0xFFFE``), as some TTS servers send even for plain 16-bit PCM.
    Streamed WAV (``espeak-ng --stdout``, OpenAI's ``/audio/speech``) carries placeholder sizes such as
    ``0x7ffff000`` or ``0xffffffff`` in its header because the length is unknown when the header is written,
    so the samples are taken as whatever data actually follows the header.
    """
    fmt, raw = _read_wav(data, who)
    if fmt.bits != 16:
        raise BackendError(f"{who}: expected 16-bit WAV audio, got {fmt.bits}-bit")
    raw = raw[: len(raw) - len(raw) % (2 * fmt.channels)]
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if fmt.channels > 1:
        pcm = np.round(pcm.reshape(-1, fmt.channels).mean(axis=1)).astype(np.int16)
    if len(pcm) == 0:
        raise BackendError(f"{who}: the answer held no audio samples")
    return Speech(pcm=pcm, sample_rate=fmt.sample_rate)


def _read_wav(data: bytes, who: str) -> tuple[WavFormat, bytes]:
    """The ``fmt `` chunk and the sample bytes of a RIFF/WAVE file (a data size past the end means "the rest")."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise BackendError(f"{who}: the answer is not WAV audio (no RIFF/WAVE header; starts with {data[:16]!r})")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = _read_fmt(body, who)
        elif chunk_id == b"data":
            if fmt is None:
                raise BackendError(f"{who}: the answer is not WAV audio (data chunk before the fmt chunk)")
            return fmt, body
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    raise BackendError(f"{who}: the answer is not WAV audio (no {'data' if fmt else 'fmt'} chunk)")


def _read_fmt(chunk: bytes, who: str) -> WavFormat:
    """Plain PCM, or WAVE_FORMAT_EXTENSIBLE whose subformat is PCM; anything else is a BackendError."""
    if len(chunk) < 16:
        raise BackendError(f"{who}: the answer is not WAV audio (fmt chunk of {len(chunk)} bytes)")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(chunk) < 40:
            raise BackendError(f"{who}: WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(chunk)} bytes, not 40")
        subformat = chunk[24:40]
        if subformat != PCM_SUBFORMAT:
            raise BackendError(f"{who}: expected PCM WAV audio, got WAVE_FORMAT_EXTENSIBLE subformat "
                               f"{subformat.hex()} (tag 0x{int.from_bytes(subformat[:2], 'little'):04x})")
    elif tag != WAVE_FORMAT_PCM:
        raise BackendError(f"{who}: expected PCM WAV audio, got format tag 0x{tag:04x}")
    if channels < 1 or rate < 1:
        raise BackendError(f"{who}: the answer is not WAV audio ({channels} channels at {rate} Hz)")
    return WavFormat(channels=channels, sample_rate=rate, bits=bits)
