"""Korean voice input's parts, each on its own: the language of a socket's speech is asked per recognition (the
session's voice can change between turns), each language goes to its model, the server's default ASR knows Korean,
and a model shipped in parts is joined once, checked, and refused when its parts do not add up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from avatarchat.asr import LanguageASR, asr_language, create_asr, heard_language
from avatarchat.asr.base import Transcript
from avatarchat.asr.budget import AsrBudget
from avatarchat.asr.bundled import SplitModel
from avatarchat.errors import ConfigError
from avatarchat.settings import Settings


class Recording:
    def __init__(self, name: str, languages: tuple[str, ...]) -> None:
        self.name, self.languages = name, languages
        self.heard: list[str | None] = []
        self.warmed = 0

    def transcribe(self, pcm: np.ndarray, language: str | None = None) -> Transcript:
        self.heard.append(language)
        return Transcript(text=self.name, language=language or "?", audio_s=0.0, compute_s=0.0)

    def warm_up(self) -> None:
        self.warmed += 1


async def test_each_recognition_is_heard_in_the_language_its_socket_names_at_that_moment() -> None:
    english, multilingual = Recording("tiny", ("en",)), Recording("base", ("en", "ko"))
    budget = AsrBudget(LanguageASR({"en": english, "ko": multilingual}), None, threads=1)
    chosen = {"voice": "en"}
    budget.hears("socket", lambda: chosen["voice"])
    try:
        first = await budget.transcribe("socket", np.zeros(1600, np.int16), final=True)
        chosen["voice"] = "ko"  # the picker changed between two turns
        second = await budget.transcribe("socket", np.zeros(1600, np.int16), final=True)
        other = await budget.transcribe("another socket", np.zeros(1600, np.int16), final=True)
    finally:
        budget.close()
    assert (first.text, second.text, other.text) == ("tiny", "base", "tiny")
    assert english.heard == ["en", "en"] and multilingual.heard == ["ko"]  # always named, never None (guessed)


def test_only_the_first_languages_model_warms_unless_asked() -> None:
    english, multilingual = Recording("tiny", ("en",)), Recording("base", ("en", "ko"))
    LanguageASR({"en": english, "ko": multilingual}).warm_up()
    assert (english.warmed, multilingual.warmed) == (1, 0)
    LanguageASR({"en": english, "ko": multilingual}, warm=("en", "ko")).warm_up()
    assert (english.warmed, multilingual.warmed) == (2, 1)


def test_the_default_asr_hears_korean_and_without_a_multilingual_model_korean_is_refused() -> None:
    asr = create_asr(Settings(_env_file=None))
    assert asr.languages == ("en", "ko")
    assert asr_language(Settings(_env_file=None), asr) is None  # auto: each turn follows the session's voice
    assert asr_language(Settings(_env_file=None, asr_language="ko"), asr) == "ko"
    assert heard_language("ko", asr.languages) == "ko" and heard_language("de", asr.languages) == "en"
    assert heard_language(None, asr.languages) == "en"
    english_only = create_asr(Settings(_env_file=None, asr_model_multilingual=""))
    with pytest.raises(ConfigError, match="Korean"):
        asr_language(Settings(_env_file=None, asr_language="ko"), english_only)


def _split(tmp_path: Path, parts: list[bytes], whole: bytes) -> SplitModel:
    files = []
    for i, data in enumerate(parts):
        (tmp_path / f"part{i}").write_bytes(data)
        files.append(tmp_path / f"part{i}")
    (tmp_path / "config.json").write_text("{}")
    return SplitModel("test", tuple(files), (tmp_path / "config.json",), len(whole),
                      hashlib.sha256(whole).hexdigest(), tmp_path / "joined")


def test_a_model_in_parts_is_joined_once_and_checked(tmp_path: Path) -> None:
    model = _split(tmp_path, [b"abc", b"def"], b"abcdef")
    assert not model.ready()
    directory = model.assemble()
    assert (directory / "model.bin").read_bytes() == b"abcdef" and (directory / "config.json").is_file()
    assert model.ready()
    stamp = (directory / "model.bin").stat().st_mtime_ns
    assert model.assemble() == directory and (directory / "model.bin").stat().st_mtime_ns == stamp  # reused


def test_parts_that_do_not_add_up_are_refused_and_leave_nothing_behind(tmp_path: Path) -> None:
    model = _split(tmp_path, [b"abc", b"XYZ"], b"abcdef")
    with pytest.raises(ConfigError, match="do not add up"):
        model.assemble()
    assert list((tmp_path / "joined").iterdir()) == []
