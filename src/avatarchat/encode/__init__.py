"""Clip encoding: frames + PCM -> MP4 (H.264 + AAC), in-process with PyAV."""

from avatarchat.encode.mp4 import AUDIO_RATE, ClipEncoder, encode_clip, prepare_audio

__all__ = ["AUDIO_RATE", "ClipEncoder", "encode_clip", "prepare_audio"]
