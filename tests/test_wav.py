"""Tests for ``avatarchat.tts.base.speech_from_wav`` on WAV headers built byte by byte.

TTS servers send plain PCM WAV, WAVE_FORMAT_EXTENSIBLE WAV (tag 0xFFFE, the sample format in a subformat GUID)
and streamed WAV whose sizes are placeholders; Python 3.11's ``wave`` module reads only the first.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from avatarchat.errors import BackendError
from avatarchat.tts.base import speech_from_wav

PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")
FLOAT_GUID = bytes.fromhex("0300000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_IEEE_FLOAT
PLACEHOLDER = 0xFFFFFFFF


def fmt_chunk(channels: int, rate: int, bits: int = 16, extensible: bool = True, subformat: bytes = PCM_GUID,
              ext_size: int = 22) -> bytes:
    """A ``fmt `` chunk: 16 bytes of WAVEFORMAT, plus (extensible) cbSize, valid bits, channel mask, subformat."""
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", 0xFFFE if extensible else 1, channels, rate, rate * align, align, bits)
    if extensible:
        mask = 0x4 if channels == 1 else 0x3
        body += struct.pack("<HHI", ext_size, bits, mask) + subformat
    return b"fmt " + struct.pack("<I", len(body)) + body


def wav(samples: np.ndarray, rate: int = 22050, channels: int = 1, *, riff_size: int | None = None,
        data_size: int | None = None, before_data: bytes = b"", **fmt) -> bytes:
    """A whole file: RIFF header, fmt chunk, optional chunks, data chunk (sizes true unless given)."""
    pcm = samples.astype("<i2").tobytes()
    head = fmt_chunk(channels, rate, **fmt) + before_data
    data = b"data" + struct.pack("<I", len(pcm) if data_size is None else data_size) + pcm
    size = 4 + len(head) + len(data) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + b"WAVE" + head + data


RAMP = np.arange(-500, 500, 3, dtype=np.int16) * 40


def test_extensible_mono_16_bit_pcm_is_read_sample_for_sample() -> None:
    """Tag 0xFFFE with the PCM subformat is plain 16-bit PCM: every sample and the rate come through."""
    speech = speech_from_wav(wav(RAMP, rate=24000), "test")
    assert speech.sample_rate == 24000
    np.testing.assert_array_equal(speech.pcm, RAMP)


def test_extensible_stereo_is_mixed_down_to_mono() -> None:
    """Interleaved left/right frames become their mean."""
    left, right = RAMP, -RAMP // 2
    frames = np.stack([left, right], axis=1).reshape(-1)
    speech = speech_from_wav(wav(frames, rate=16000, channels=2), "test")
    assert speech.sample_rate == 16000
    np.testing.assert_array_equal(speech.pcm, np.round((left.astype(float) + right) / 2).astype(np.int16))


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFF000])
def test_extensible_with_streamed_placeholder_sizes_reads_what_follows(placeholder: int) -> None:
    """A streamed header's unknown sizes are placeholders: the samples are whatever data actually follows."""
    data = wav(RAMP, riff_size=placeholder, data_size=placeholder)
    np.testing.assert_array_equal(speech_from_wav(data, "test").pcm, RAMP)
    np.testing.assert_array_equal(speech_from_wav(data + b"\x07", "test").pcm, RAMP)  # half a sample is dropped


def test_plain_pcm_with_an_odd_sized_chunk_before_the_data_still_reads() -> None:
    """A LIST chunk of odd length (padded to even) between fmt and data is skipped."""
    info = b"LIST" + struct.pack("<I", 7) + b"INFOabc" + b"\x00"
    speech = speech_from_wav(wav(RAMP, extensible=False, before_data=info), "test")
    np.testing.assert_array_equal(speech.pcm, RAMP)


def test_extensible_float_subformat_is_refused_by_name() -> None:
    """32-bit float in EXTENSIBLE is not PCM: the error says which subformat came, not that it is not WAV."""
    with pytest.raises(BackendError) as info:
        speech_from_wav(wav(RAMP, bits=32, subformat=FLOAT_GUID), "Some TTS")
    assert info.value.message.startswith("Some TTS: expected PCM WAV audio")
    assert "subformat" in info.value.message and "0x0003" in info.value.message
    assert info.value.code == "backend_error"


def test_extensible_24_bit_pcm_is_refused_as_the_wrong_width() -> None:
    with pytest.raises(BackendError, match="expected 16-bit WAV audio, got 24-bit"):
        speech_from_wav(wav(RAMP, bits=24), "test")


def test_extensible_header_cut_short_is_refused() -> None:
    """Tag 0xFFFE promises 22 more bytes of fmt; a header without them is an error, not a guess."""
    short = fmt_chunk(1, 22050, extensible=False)
    short = short[:8] + struct.pack("<H", 0xFFFE) + short[10:]
    data = b"RIFF" + struct.pack("<I", PLACEHOLDER) + b"WAVE" + short + b"data" + struct.pack("<I", 4) + b"\x01\x02"
    with pytest.raises(BackendError, match="EXTENSIBLE fmt chunk is 16 bytes"):
        speech_from_wav(data, "test")


def test_other_format_tags_are_refused() -> None:
    """A-law (tag 6) in a plain header is not PCM either."""
    data = wav(RAMP, extensible=False)
    data = data[:20] + struct.pack("<H", 6) + data[22:]
    with pytest.raises(BackendError, match="format tag 0x0006"):
        speech_from_wav(data, "test")


@pytest.mark.parametrize("data", [b"", b"ID3\x04 not audio at all", b"RIFF\x00\x00\x00\x00WAVE"])
def test_what_is_not_wav_says_so(data: bytes) -> None:
    with pytest.raises(BackendError, match="test: the answer is not WAV audio"):
        speech_from_wav(data, "test")


def test_a_header_without_samples_is_refused() -> None:
    with pytest.raises(BackendError, match="held no audio samples"):
        speech_from_wav(wav(np.zeros(0, np.int16), data_size=PLACEHOLDER), "test")
