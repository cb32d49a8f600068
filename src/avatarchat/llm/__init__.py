"""LLM backends, chosen by name in settings."""

from __future__ import annotations

from collections.abc import Callable

from avatarchat.data import Message
from avatarchat.llm.base import LLM
from avatarchat.llm.echo import EchoLLM
from avatarchat.llm.faq import FaqLLM
from avatarchat.llm.openai import OpenAILLM
from avatarchat.settings import Settings


def _openai(s: Settings) -> LLM:
    return OpenAILLM(
        base_url=s.openai_base_url,
        api_key=s.openai_api_key.get_secret_value(),
        model=s.openai_model,
        system_prompt=s.system_prompt.replace("{name}", s.avatar_name),
        timeout_s=s.openai_timeout_s,
    )


def _faq(s: Settings) -> LLM:
    return FaqLLM(path=s.faq_path, avatar_name=s.avatar_name, threshold=s.faq_threshold, fallback=s.faq_fallback,
                  fallback_ko=s.faq_fallback_ko)


REGISTRY: dict[str, Callable[[Settings], LLM]] = {
    "faq": _faq,
    "echo": lambda s: EchoLLM(),
    "openai": _openai,
}


def create_llm(settings: Settings) -> LLM:
    return REGISTRY[settings.llm_backend](settings)


__all__ = ["LLM", "Message", "EchoLLM", "FaqLLM", "OpenAILLM", "create_llm", "REGISTRY"]
