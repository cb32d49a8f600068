"""Tests for ``avatarchat.pipeline.sentences``: streaming sentence splitting for TTS."""

from __future__ import annotations

import re

import pytest

from avatarchat.pipeline.sentences import SentenceSplitter, split_sentences


def stream(pieces: list[str] | str, max_chars: int = 140) -> tuple[list[str], list[list[str]]]:
    """Feed ``pieces`` one by one; return (all sentences, what each feed returned); flush output is appended."""
    splitter = SentenceSplitter(max_chars)
    per_feed = [splitter.feed(p) for p in pieces]
    sentences = [s for batch in per_feed for s in batch] + splitter.flush()
    return sentences, per_feed


def test_english_terminators() -> None:
    """``.``, ``!`` and ``?`` end sentences when followed by whitespace or the end."""
    text = "Hello there. How are you? I am great! Thanks."
    assert split_sentences(text) == ["Hello there.", "How are you?", "I am great!", "Thanks."]


def test_repeated_punctuation_ellipsis_and_closing_quote() -> None:
    """Runs of terminators and closing quotes/brackets stay with their sentence."""
    text = 'Wait... what?! He said "go." (Really.) Yes… fine'
    assert split_sentences(text) == ["Wait...", "what?!", 'He said "go."', "(Really.)", "Yes…", "fine"]


def test_korean() -> None:
    """Korean text with ASCII terminators splits into its three sentences."""
    text = "안녕하세요. 저는 아바타입니다! 무엇을 도와드릴까요?"
    assert split_sentences(text) == ["안녕하세요.", "저는 아바타입니다!", "무엇을 도와드릴까요?"]


def test_full_width_terminators_followed_by_space() -> None:
    """Full-width ``。！？`` end sentences (followed by whitespace, as the module documents)."""
    text = "こんにちは。 元気ですか？ 私は元気です！ 你好。"
    assert split_sentences(text) == ["こんにちは。", "元気ですか？", "私は元気です！", "你好。"]


def test_full_width_terminators_without_space() -> None:
    """CJK sentences are written without spaces after ``。！？`` and should still split."""
    assert split_sentences("你好。我很好！你呢？") == ["你好。", "我很好！", "你呢？"]


def test_empty_and_whitespace_only() -> None:
    """Nothing to say yields no sentences; whitespace is normalised inside a sentence."""
    assert split_sentences("") == []
    assert split_sentences("   \n\t ") == []
    assert split_sentences("  Hello \n  world.\n\n  Bye. ") == ["Hello world.", "Bye."]


@pytest.mark.parametrize(
    "text",
    [
        "Hello there. How are you? I am great! Thanks.",
        "안녕하세요. 저는 아바타입니다! 무엇을 도와드릴까요?",
        "こんにちは。 元気ですか？ 私は元気です！",
        "Dr. Smith paid 3.5 dollars, e.g. for tea. Then he left... Bye!",
        "No trailing punctuation here",
    ],
)
def test_streaming_char_by_char_matches_one_shot(text: str) -> None:
    """Feeding one character at a time yields exactly what one-shot splitting yields."""
    sentences, _ = stream(list(text))
    assert sentences == split_sentences(text)


def test_streaming_yields_first_sentence_before_stream_ends() -> None:
    """The first sentence comes out of ``feed`` as soon as the whitespace after it arrives."""
    text = "Hello there. How are you? I am great!"
    splitter = SentenceSplitter()
    got: list[tuple[int, str]] = []
    for i, ch in enumerate(text):
        got += [(i, s) for s in splitter.feed(ch)]
    assert got[0] == (text.index(" How"), "Hello there.")
    assert [s for _, s in got] == ["Hello there.", "How are you?"]
    assert splitter.flush() == ["I am great!"]
    assert splitter.flush() == []


def test_streaming_in_llm_sized_pieces() -> None:
    """Pieces that cut through words and punctuation still give whole sentences."""
    pieces = ["Hel", "lo the", "re", ".", " How a", "re you", "?", " ", "Fine", "."]
    sentences, per_feed = stream(pieces)
    assert sentences == ["Hello there.", "How are you?", "Fine."]
    assert per_feed[3] == []  # "." alone could still be "3.5": wait for what follows
    assert per_feed[4] == ["Hello there."]


@pytest.mark.parametrize("abbrev", ["Dr.", "Mr.", "Mrs.", "Ms.", "Prof.", "St.", "vs.", "e.g.", "i.e.", "etc."])
def test_abbreviations_do_not_split(abbrev: str) -> None:
    """A known abbreviation followed by a space does not end the sentence."""
    text = f"I saw {abbrev} Smith today. Then I left."
    assert split_sentences(text) == [f"I saw {abbrev} Smith today.", "Then I left."]
    assert stream(list(text))[0] == split_sentences(text)


def test_dr_smith() -> None:
    """The canonical case from the brief."""
    assert split_sentences("Dr. Smith will see you now. Please wait.") == [
        "Dr. Smith will see you now.",
        "Please wait.",
    ]


def test_no_as_a_sentence() -> None:
    """'No.' on its own is a complete sentence."""
    assert split_sentences("No. I don't think so.") == ["No.", "I don't think so."]


def test_decimal_streamed_across_pieces_does_not_split() -> None:
    """'3.' at the end of a piece waits for the next piece; '3.5' is not a sentence end."""
    sentences, per_feed = stream(["It costs 3.", "5 dollars. ", "Okay."])
    assert per_feed[0] == []
    assert per_feed[1] == ["It costs 3.5 dollars."]
    assert sentences == ["It costs 3.5 dollars.", "Okay."]


def test_decimal_one_shot() -> None:
    """Decimals and version numbers inside a sentence do not split it."""
    assert split_sentences("Pi is about 3.14 and v2.0 is out. Yes.") == ["Pi is about 3.14 and v2.0 is out.", "Yes."]


LONG = " ".join(
    f"clause number {i} talks about the weather and the sea and the long road home," for i in range(6)
) + " and then it finally ends."


def _words(parts: list[str]) -> list[str]:
    return " ".join(parts).split()


@pytest.mark.parametrize("max_chars", [140, 80])
def test_long_sentence_split_at_clauses_without_loss(max_chars: int) -> None:
    """A ~460-char sentence is cut into pieces <= max_chars, at commas, with every word kept in order."""
    assert len(LONG) > 400
    parts = split_sentences(LONG, max_chars=max_chars)
    assert len(parts) > 1
    assert all(0 < len(p) <= max_chars for p in parts)
    assert _words(parts) == LONG.split()
    assert all(p.endswith(",") for p in parts[:-1])  # every cut is at a clause boundary


def test_long_sentence_streamed_matches_one_shot() -> None:
    """Streaming a long sentence char by char emits pieces early, the same pieces as one-shot."""
    sentences, per_feed = stream(list(LONG))
    assert sentences == split_sentences(LONG)
    assert any(per_feed[: len(LONG) // 2])  # something was spoken before half the text arrived
    assert all(len(p) <= 140 for p in sentences)


def test_long_sentence_without_clauses_falls_back_to_spaces() -> None:
    """With no clause marks, the cut is at a space, never inside a word."""
    text = " ".join(["word"] * 100) + "."
    parts = split_sentences(text, max_chars=50)
    assert all(len(p) <= 50 for p in parts)
    assert _words(parts) == text.split()
    assert all(re.fullmatch(r"(word )*word\.?", p) for p in parts)


def test_long_sentence_with_dashes() -> None:
    """A spaced dash counts as a clause boundary."""
    text = "a" * 20 + " " + " ".join(["alpha beta gamma"] * 4) + " - " + " ".join(["delta"] * 20)
    parts = split_sentences(text, max_chars=100)
    assert parts[0].endswith(" -")
    assert _words(parts) == text.split()


def test_flush_resets_state() -> None:
    """After ``flush`` the splitter starts fresh."""
    splitter = SentenceSplitter()
    assert splitter.feed("First part") == []
    assert splitter.flush() == ["First part"]
    assert splitter.feed("Second. ") == ["Second."]
    assert splitter.flush() == []


def test_numbered_no_is_still_an_abbreviation() -> None:
    assert split_sentences("Take road No. 5 to the city. Then stop.") == ["Take road No. 5 to the city.", "Then stop."]
