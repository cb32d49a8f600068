"""The backend contracts: every LLM and TTS backend subclasses its base, whose ``warm_up`` and ``aclose`` are
no-ops by default, and ``VoiceRouter`` warms and closes its backends through that contract."""

from __future__ import annotations

import numpy as np
import pytest

from avatarchat.data import Message, Speech
from avatarchat.llm import REGISTRY as LLMS
from avatarchat.llm.base import LLM
from avatarchat.llm.echo import EchoLLM
from avatarchat.llm.openai import OpenAILLM
from avatarchat.tts import REGISTRY as TTSS
from avatarchat.tts import EspeakTTS, GoogleTTS, OpenAITTS, PiperTTS, VoiceRouter
from avatarchat.tts.base import TTS


class Quiet(TTS):
    """The least a TTS must write: ``synthesize`` and ``voices``. Records the life-cycle calls it gets."""

    name = "quiet"
    default_voice = "hush"

    def __init__(self, fail_close: bool = False) -> None:
        self.calls: list[str] = []
        self._fail_close = fail_close

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        return Speech(np.zeros(160, np.int16), 16000)

    def voices(self) -> list[str]:
        return [self.default_voice]

    def warm_up(self) -> None:
        self.calls.append("warm_up")

    async def aclose(self) -> None:
        self.calls.append("aclose")
        if self._fail_close:
            raise RuntimeError("close failed")


class Minimal(TTS):
    name = "minimal"
    default_voice = "v"

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        return Speech(np.zeros(1, np.int16), 8000)

    def voices(self) -> list[str]:
        return ["v"]


def test_every_backend_subclasses_its_base() -> None:
    assert {"echo", "openai", "faq"} <= set(LLMS) and {"piper", "espeak", "google", "openai"} <= set(TTSS)
    for cls in (EchoLLM, OpenAILLM):
        assert issubclass(cls, LLM), cls
    for cls in (PiperTTS, EspeakTTS, GoogleTTS, OpenAITTS, VoiceRouter):
        assert issubclass(cls, TTS), cls


def test_the_abstract_methods_must_be_written() -> None:
    class NoVoices(TTS):
        async def synthesize(self, text: str, voice: str | None = None) -> Speech:
            raise NotImplementedError

    class NoStream(LLM):
        pass

    with pytest.raises(TypeError, match="voices"):
        NoVoices()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="stream"):
        NoStream()  # type: ignore[abstract]


async def test_the_defaults_are_no_ops() -> None:
    tts, llm = Minimal(), EchoLLM()
    assert tts.warm_up() is None and await tts.aclose() is None
    assert llm.warm_up() is None and await llm.aclose() is None
    assert [p async for p in llm.stream([Message("user", "still works")])] == ["still", " works"]


async def test_the_router_warms_and_closes_every_backend() -> None:
    a, b, c = Quiet(), Quiet(fail_close=True), Quiet()
    router = VoiceRouter({"a": a, "b": b, "c": c, "m": Minimal()}, primary="a", script_defaults={})
    router.warm_up()
    assert a.calls == b.calls == c.calls == ["warm_up"]
    with pytest.raises(RuntimeError, match="close failed"):
        await router.aclose()
    assert c.calls == ["warm_up", "aclose"]  # closed although the backend before it failed to close

