"""Tests for ``avatarchat.pipeline.sentences``: streaming sentence splitting for TTS."""

from __future__ import annotations

import re

import pytest

from avatarchat.pipeline.sentences import SentenceSplitter, ends_sentence, split_sentences, spoken_seconds


def stream(pieces: list[str] | str, max_chars: int | None = None) -> tuple[list[str], list[list[str]]]:
    """Feed ``pieces`` one by one; return (all sentences, what each feed returned); flush output is appended."""
    splitter = SentenceSplitter() if max_chars is None else SentenceSplitter(max_chars)
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


# Cutting by spoken time: the limits below are the module's 8 s read through the voices' measured rates
# (espeak-ng Korean at rate 175: 5.0-6.0 syllables a second; a digit of a long number: 0.45-0.55 s; Piper reading
# a URL: about 8 characters a second), with some slack for the estimate.
KOREAN_LONG = " ".join(["오늘은 날씨가 아주 맑고 바람이 시원해서"] * 4 + ["산책하기에 정말 좋은 날입니다."])


def _syllables(text: str) -> int:
    return len(re.findall(r"[\uac00-\ud7af]", text))


def test_a_korean_sentence_under_140_characters_that_takes_15_seconds_is_cut() -> None:
    """~75 Hangul syllables (about 13-15 s with espeak-ng) fit in 140 characters, but not in one 8 s clip."""
    assert len(KOREAN_LONG) < 140 and _syllables(KOREAN_LONG) > 70
    parts = split_sentences(KOREAN_LONG)
    assert len(parts) >= 2
    assert all(_syllables(p) <= 48 for p in parts)  # 8 s at 6 syllables a second
    assert _words(parts) == KOREAN_LONG.split()  # cut between words, nothing lost


def test_an_english_sentence_of_eight_seconds_stays_whole() -> None:
    """About 100 letters (~7 s with Piper) is one clip: the time limit does not cut ordinary English short."""
    text = "The weather today is sunny with a light breeze from the west and it is perfect for a long walk outside."
    assert split_sentences(text) == [text]


def test_a_long_url_is_cut_hard_into_pieces_of_a_few_seconds() -> None:
    """A URL has no clause boundary or space: it is cut anywhere, every character kept, each piece short."""
    url = "https://example.com/" + "/".join(f"section-{i}/page-{i}" for i in range(12))
    assert len(url) > 200
    parts = split_sentences(f"See {url}")
    assert len(parts) >= 3
    assert "".join(parts).replace(" ", "") == f"See{url}"
    assert all(len(p) <= 80 for p in parts)  # ~8 s at Piper's ~8 URL characters a second, plus slack


def test_a_long_digit_string_is_cut_into_pieces_of_at_most_eight_seconds() -> None:
    """Sixty digits read one by one are ~30 s of speech; no piece holds more than ~8 s of them."""
    digits = "1234567890" * 6
    parts = split_sentences(digits)
    assert "".join(parts) == digits
    assert len(parts) >= 4
    assert all(len(p) <= 18 for p in parts)


def test_japanese_without_spaces_is_cut_after_full_width_commas() -> None:
    """Japanese puts no space after 、: it is still a clause boundary, so the cut lands right after one."""
    clause = "今日は天気がとても良いので公園まで歩きます、"
    text = clause * 4 + "そして家に帰ります。"
    parts = split_sentences(text)
    assert len(parts) >= 3
    assert "".join(parts) == text
    assert all(p.endswith("、") for p in parts[:-1])


def test_a_lower_time_limit_gives_shorter_pieces() -> None:
    """``max_seconds`` is the limit: halving it roughly doubles the number of pieces."""
    text = " ".join(["word"] * 200) + "."
    eight = split_sentences(text)
    four = split_sentences(text, max_seconds=4.0)
    assert len(four) >= 2 * len(eight) - 1 > 2
    assert _words(four) == _words(eight) == text.split()


@pytest.mark.parametrize(
    "text",
    [KOREAN_LONG, "See https://example.com/" + "a/b-c/" * 40, "1234567890" * 6, "今日は天気がとても良いので、" * 8],
)
def test_time_cuts_streamed_char_by_char_match_one_shot(text: str) -> None:
    """The time limit cuts a stream at the same places as the whole text, and before the stream ends."""
    sentences, per_feed = stream(list(text))
    assert sentences == split_sentences(text)
    assert any(per_feed[: len(text) * 3 // 4])


@pytest.mark.parametrize(
    ("text", "measured_s"),
    [  # durations the offline voices took for these texts (Piper en_US-joe-medium; espeak-ng rate 175)
        ("The weather today is sunny with a light breeze from the west, perfect for a walk.", 4.33),  # piper
        ("오늘 날씨는 맑고 서쪽에서 가벼운 바람이 불어 산책하기에 아주 좋습니다.", 5.62),  # espeak ko
        ("https://example.com/docs/getting-started/install", 5.87),  # piper
        ("4155550123", 5.61),  # piper
        ("こんにちは、私はアバターです。今日はいい天気ですね。", 7.46),  # espeak ja
        ("我是一个会说话的头像，今天天气很好。", 6.48),  # espeak cmn
    ],
)
def test_the_estimate_is_within_a_quarter_of_what_the_voices_took(text: str, measured_s: float) -> None:
    """Each script's rate is calibrated: the estimate is within 25 % of a real synthesis of the same text."""
    assert abs(spoken_seconds(text) - measured_s) <= 0.25 * measured_s


# -- the reply's first chunk: about 1 s of speech, cut where a speaker may pause ------------------------------
def first(text: str) -> list[str]:
    return split_sentences(text, first_seconds=1.0)


def test_first_sentence_is_cut_at_a_clause_near_one_second() -> None:
    assert first("Hello there, it is good to see you again today.") == [
        "Hello there,", "it is good to see you again today."]
    assert first("안녕하세요, 저는 아바타챗의 말하는 아바타입니다.") == [
        "안녕하세요,", "저는 아바타챗의 말하는 아바타입니다."]
    # "Well," is too short a piece (< 0.5 s): the cut moves on to a word boundary before a function word
    assert first("Well, I can tell you about the weather and the news today. Then more.") == [
        "Well, I can tell you", "about the weather and the news today.", "Then more."]


def test_first_chunk_falls_back_to_a_word_boundary_before_a_function_word() -> None:
    for text in ["I can tell you about the weather, the news, or anything else you would like to hear.",
                 "Our renderer draws the mouth from the phonemes of the voice on an ordinary processor.",
                 "Avatarchat speaks every reply aloud with a face that moves in time with the voice."]:
        head, *rest = first(text)
        assert 0.5 <= spoken_seconds(head) <= 1.4 and len(rest) == 1, (head, rest)
        assert " ".join([head, *rest]) == text
    assert first("I can tell you about the weather, the news, or anything else you would like to hear.")[0] == (
        "I can tell you about")  # before "the", not after it


def test_a_first_sentence_over_about_one_and_a_half_seconds_is_cut() -> None:
    """Estimated at 1.5-1.6 s, said in 1.8-2.2 s: each first clip came ~250 ms after a 1 s chunk's."""
    assert first("제 이름은 Ava입니다. 아바타챗의 말하는 아바타예요.")[:2] == ["제 이름은", "Ava입니다."]
    head, rest, *_ = first("Set the LLM backend setting to openai, and point it at your server.")
    assert (head, rest) == ("Set the LLM backend", "setting to openai, and point it at your server.")
    assert first("I am doing well today.") == ["I am doing well today."]  # 1.3 s: said whole


def test_only_the_first_sentence_is_cut() -> None:
    text = "Hi. Avatarchat speaks every reply aloud with a face that moves in time with the voice."
    assert first(text) == split_sentences(text)  # "Hi." is a short first chunk already
    parts = first("Avatarchat speaks every reply aloud with a face that moves. It does this on an ordinary processor.")
    assert len(parts) == 3 and parts[-1] == "It does this on an ordinary processor."


def test_short_first_sentences_and_one_word_are_not_cut() -> None:
    assert first("Yes.") == ["Yes."]
    assert first("Absolutely") == ["Absolutely"]
    assert first("Supercalifragilisticexpialidocious!") == ["Supercalifragilisticexpialidocious!"]
    assert first("Hello! I'm Ava.") == ["Hello!", "I'm Ava."]
    assert first("My name is Ava.") == ["My name is Ava."]
    assert first("Okay then, sure thing.") == ["Okay then, sure thing."]  # cut, a piece would be under 0.5 s


def test_first_chunk_never_cuts_inside_a_number_or_a_url() -> None:
    url = "https://github.com/example/avatarchat/blob/main/README.md"
    assert first(f"Open {url} to read the setup guide for your machine.") == [
        f"Open {url}", "to read the setup guide for your machine."]
    assert first("The price is 3 500 dollars and 25 cents for the whole thing, taxes included.") == [
        "The price is", "3 500 dollars and 25 cents for the whole thing, taxes included."]
    # digits take long to say: the first word boundary after "Version 2.10.3", not a cut inside it
    assert first("Version 2.10.3 added 1,000 new voices in 14 languages for everyone to try.") == [
        "Version 2.10.3", "added 1,000 new voices in 14 languages for everyone to try."]


def test_first_chunk_without_spaces_is_not_cut() -> None:
    assert first("グラフィックカードは要りません。") == ["グラフィックカードは要りません。"]
    assert first("아바타챗은 일반 CPU에서 실행되며 그래픽 카드가 전혀 필요하지 않습니다. 좋아요.")[-1] == "좋아요."


def test_first_chunk_streamed_word_by_word_is_cut_before_the_sentence_ends() -> None:
    splitter = SentenceSplitter(first_seconds=1.0)
    text = "I can tell you about the weather and the news and anything else you like today. Then more."
    words = text.split(" ")
    got_at = None
    out: list[str] = []
    for i, word in enumerate(words):
        done = splitter.feed(word + " ")
        if done and got_at is None:
            got_at = i
        out += done
    out += splitter.flush()
    # it waits for 0.5 s of text after the longest possible head, not for the sentence's end (word 16)
    assert got_at is not None and got_at <= 9, got_at
    assert out == ["I can tell you about", "the weather and the news and anything else you like today.", "Then more."]


GROWING = ("Set the LLM backend setting to openai, and point the OpenAI base URL at any server that speaks its "
           "protocol, such as Ollama, vLLM or a llama.cpp server. Then a real language model writes my answers, "
           "and I still speak them as before. The face is analysed once and cached, and every clip after that "
           "uses it.")


def test_growing_chunks_lose_nothing_and_grow_until_sentences_fit() -> None:
    """A busy server's rule: after the short first chunk each chunk lasts about ``growth`` times the speech before
    it allows, never shorter than the last by much, cut only at word boundaries, and nothing lost or repeated."""
    whole = split_sentences(GROWING, first_seconds=1.0)
    grown = split_sentences(GROWING, first_seconds=1.0, growth=1.5)
    assert " ".join(grown).split() == GROWING.split()
    assert len(grown) > len(whole)  # later sentences were cut too
    secs = [spoken_seconds(p) for p in grown]
    assert secs[0] <= 1.8 and secs[1] <= (1.5 - 1) * secs[0] + secs[0] + 0.8 + 0.01
    said = 0.0
    for i, (piece, s) in enumerate(zip(grown, secs, strict=True)):
        if i:  # each cut piece stays within its budget (a sentence's natural end may come sooner)
            assert s <= 0.5 * said + secs[0] + 0.8 + 0.01, (piece, s, said)
        said += s
    assert grown[-1] == whole[-1]  # by then the budget holds a whole sentence: said whole again


def test_growth_must_grow() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(first_seconds=1.0, growth=1.0)


@pytest.mark.parametrize("chunk, ends", [
    ("Hello!", True), ('He said "go."', True), ("Wait...", True), ("좋아요.", True), ("好。", True),
    ("I'm doing great,", False), ("Avatarchat is", False), ("Set it to: ", False), ("Version 3.5", False),
])
def test_a_chunk_ends_its_sentence_only_on_a_sentence_mark(chunk: str, ends: bool) -> None:
    assert ends_sentence(chunk) is ends


def test_an_idle_server_cuts_a_long_sentence_after_a_short_one_and_keeps_sentences_that_fit() -> None:
    """Idle (``grow_if`` says no), ``idle_growth`` applies: "Yes." then a 4 s sentence stalled the avatar after its
    first word; now that sentence starts on a piece about 4 times "Yes.". A reply whose later sentences fit its
    budget is said as before, and busy, the tighter ``growth`` still rules."""
    def split(text: str, busy: bool) -> list[str]:
        s = SentenceSplitter(first_seconds=1.0, growth=1.5, grow_if=lambda: busy, idle_growth=4.0)
        return s.feed(text) + s.flush()

    text = "Yes. The code is under the MIT license, and you are free to use and change it."
    idle = split(text, busy=False)
    assert idle == ["Yes.", "The code is under the MIT license,", "and you are free to use and change it."]
    assert spoken_seconds(idle[1]) <= 3 * spoken_seconds(idle[0]) + spoken_seconds(idle[0]) + 0.8
    fits = "Hello! I'm Ava. Ask me anything about avatarchat, how it works, or how to set it up."
    assert split(fits, busy=False) == split_sentences(fits, first_seconds=1.0)  # nothing cut beyond the rule
    assert len(split(fits, busy=True)) > len(split(fits, busy=False))
    with pytest.raises(ValueError):
        SentenceSplitter(growth=1.5, idle_growth=1.0)


def test_busy_growth_cuts_a_second_chunk_that_idle_growth_says_whole() -> None:
    """8 sessions at once could not make a 2 s second chunk before a 0.65 s first one had played, even with the
    start-up buffer: busy, a chunk more than 0.4 s of speech past its target is cut; idle, 0.8 s."""
    text = "Hello there, it is good to see you again today. I can tell you about the weather."

    def split(busy: bool) -> list[str]:
        s = SentenceSplitter(first_seconds=1.0, growth=1.5, grow_if=lambda: busy, idle_growth=4.0)
        return s.feed(text) + s.flush()

    idle, busy = split(False), split(True)
    assert idle[:2] == ["Hello there,", "it is good to see you again today."]
    assert busy[0] == "Hello there," and busy[1] != idle[1] and idle[1].startswith(busy[1])
    target = 0.5 * spoken_seconds(busy[0]) + spoken_seconds(busy[0])
    assert spoken_seconds(busy[1]) <= target + 0.4 < spoken_seconds(idle[1])
    assert " ".join(busy).split() == text.split()


def test_a_busy_server_cuts_the_first_chunk_shorter() -> None:
    """Many sessions asking at once wait for each other's first chunks: busy, the first aims at ~0.7 s."""
    text = "The server runs offline on two cores, with a small embedded model for the answers."

    def split(busy: bool) -> list[str]:
        s = SentenceSplitter(first_seconds=1.0, growth=1.5, grow_if=lambda: busy, idle_growth=4.0,
                             busy_first_seconds=0.7)
        return s.feed(text) + s.flush()

    idle, busy = split(False), split(True)
    assert spoken_seconds(busy[0]) < spoken_seconds(idle[0])
    assert 0.5 <= spoken_seconds(busy[0]) <= 0.7 + 0.4 and abs(spoken_seconds(idle[0]) - 1.0) <= 0.4
    assert " ".join(busy).split() == text.split() == " ".join(idle).split()
    without = SentenceSplitter(first_seconds=1.0, busy_first_seconds=0.7)  # no growth: never "busy"
    assert (without.feed(text) + without.flush())[0] == idle[0]
