"""The kokoro backend against its real model: espeak-ng's phonemes in Kokoro's symbols, speech out, cancellation."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import pytest

from avatarchat.asr.whisper import WhisperASR
from avatarchat.errors import BadRequest
from avatarchat.languages import voice_language
from avatarchat.render.visemes import calibration_words
from avatarchat.settings import Settings
from avatarchat.tts import create_tts, kokoro_model
from avatarchat.tts.kokoro import SPEAKERS, KokoroTTS
from avatarchat.tts.kokoro_ipa import to_kokoro, unknown, with_punctuation
from tests.voice_audio import silence, speak

# Every phoneme of General American, each in a word (espeak-ng's en-us inventory: vowels, r-coloured vowels,
# diphthongs, syllabic consonants, flaps, glottal stops, affricates), plus numbers and abbreviations.
ENGLISH_COVERAGE = (
    "beat bit bait bet bat bot bought boat book boot but about butter bird sofa bite bout boy beer bear bore "
    "poor car fire hour cure pin bin tin din kin gin chin jam fan van thin then sip zip ship measure hip "
    "mop nap sing lap rap yes wet which button little bottle kitten uh-oh mountain rhythm loch Bach "
    "Massachusetts GitHub 3.5 1,234 Dr. Smith's iPhone WiFi naïve café schadenfreude Nguyen Tchaikovsky."
)


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory) -> KokoroTTS:
    tts = KokoroTTS(cache_dir=tmp_path_factory.mktemp("models"))
    tts.warm_up()
    return tts


def _espeak_ipa(text: str, voice: str) -> list[str]:
    done = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", voice], input=text.encode(), capture_output=True,
                          check=True, timeout=30)
    return done.stdout.decode().splitlines()


def test_every_english_espeak_symbol_maps_into_kokoros_vocabulary() -> None:
    vocab = kokoro_model.vocabulary()
    raw = "".join(_espeak_ipa(ENGLISH_COVERAGE, "en-us"))
    assert unknown(raw, vocab), "the coverage text holds a symbol only the rewrites fit (the syllabic mark of button)"
    mapped = "".join(to_kokoro(line, "en") for line in _espeak_ipa(ENGLISH_COVERAGE, "en-us"))
    assert unknown(mapped, vocab) == set(), f"unmapped English espeak-ng symbols: {unknown(mapped, vocab)}"


def test_english_rewrites_are_misakis_symbols() -> None:
    assert to_kokoro("həlˈoʊ ðˈɛɹ", "en") == "həlˈO ðˈɛɹ"
    assert to_kokoro("tʃˈɜːtʃ dʒˈʌdʒᵻz", "en") == "ʧˈɜɹʧ ʤˈʌʤᵻz"
    assert to_kokoro("hˌaʊ ɑːɹ juː tədˈeɪ", "en") == "hˌW ɑɹ ju tədˈA"
    assert to_kokoro("bˈɔɪ fˈaɪɚ", "en") == "bˈY fˈIəɹ"


def test_korean_ipa_passes_through_but_for_three_symbols_and_fits_the_vocabulary() -> None:
    vocab = kokoro_model.vocabulary()
    lines = _espeak_ipa("안녕하세요. 저는 아바타입니다. 날씨가 좋네요! 아버지가 가지를 좋아해요. "
                        "서울에서 한국어를 말할 수 있어요. 지하철역에 갔어요.", "ko")
    assert unknown("".join(lines), vocab) == {"ɫ", "ʑ", "-"}  # what KOREAN_REWRITES is for
    mapped = [to_kokoro(line, "ko") for line in lines]
    assert mapped == [line.strip().replace("ɫ", "l").replace("dʑ", "ʥ").replace("-", "") for line in lines]
    assert unknown("".join(mapped), vocab) == set()


def test_clause_marks_are_put_back_between_espeaks_lines() -> None:
    assert with_punctuation(["a", "b", "c"], "One, two? Three.") == "a, b? c."
    assert with_punctuation(["a", "b"], "One, two") == "a, b."
    assert with_punctuation(["a", "b"], "It costs 3.5 dollars") == "a, b."  # no line-up: commas, a full stop


def test_voices_are_each_speaker_in_english_and_korean_with_those_languages() -> None:
    tts = KokoroTTS()
    assert set(tts.voices()) == {*SPEAKERS, *(f"{s}+ko" for s in SPEAKERS)}
    assert voice_language("kokoro", "jf_alpha") == "en" and voice_language("kokoro", "jm_kumo+ko") == "ko"
    assert calibration_words("kokoro:jf_alpha") == calibration_words("piper:en_US-joe-medium")
    alpha, kumo = tts.describe("jf_alpha"), tts.describe("jm_kumo+ko")
    assert (alpha.label, alpha.language_name, alpha.gender, alpha.tier) == ("Alpha", "English", "female", "natural")
    assert (kumo.label, kumo.language_name, kumo.gender, kumo.tier) == ("Kumo", "Korean", "male", "natural")


def test_a_sentence_comes_out_as_speech_whisper_reads_back(kokoro: KokoroTTS) -> None:
    speech = asyncio.run(kokoro.synthesize("Hello there, how are you today?"))
    assert speech.sample_rate == 24_000 and speech.phonemes == []
    assert 1.0 < speech.duration_s < 4.0, speech.duration_s
    assert np.abs(speech.pcm).max() > 3000  # not silence
    audio = speak(kokoro, "Hello there, how are you today?")
    text = WhisperASR("tiny.en").transcribe(np.concatenate([silence(0.2), audio, silence(0.2)]), "en").text
    words = text.lower().replace(",", "").replace("?", "").replace(".", "").split()
    assert words == "hello there how are you today".split(), text


def test_longer_text_speaks_longer_and_every_speaker_differs(kokoro: KokoroTTS) -> None:
    short = asyncio.run(kokoro.synthesize("Good morning."))
    long = asyncio.run(kokoro.synthesize("Good morning. The weather is lovely today, and the sun is shining."))
    assert long.duration_s > 2 * short.duration_s
    male = asyncio.run(kokoro.synthesize("Good morning.", "jm_kumo"))
    assert not np.array_equal(male.pcm[: len(short.pcm)], short.pcm[: len(male.pcm)])


def test_a_text_past_the_model_limit_is_chunked_and_spoken_whole(kokoro: KokoroTTS) -> None:
    sentence = "The quick brown fox jumps over the lazy dog, "
    _, vocab, _ = kokoro._loaded()
    phonemes = asyncio.run(kokoro.phonemes(sentence * 20, "en"))
    chunks = kokoro.chunks(phonemes, vocab)
    assert len(chunks) >= 2 and all(len(c) <= kokoro_model.MAX_TOKENS - 2 for c in chunks)
    assert sum(map(len, chunks)) >= len([c for c in phonemes if c in vocab]) - len(chunks)


def test_korean_voice_speaks_hangul(kokoro: KokoroTTS) -> None:
    speech = asyncio.run(kokoro.synthesize("안녕하세요. 만나서 반갑습니다.", "jf_alpha+ko"))
    assert 1.0 < speech.duration_s < 5.0


def test_cancellation_stops_between_chunks(kokoro: KokoroTTS) -> None:
    calls: list[int] = []
    infer = kokoro.infer

    class Counting(KokoroTTS):
        def infer(self, ids, speaker):
            calls.append(len(ids))
            return infer(ids, speaker)

    tts = Counting(cache_dir=kokoro._cache_dir)
    tts._model = kokoro._loaded()

    async def main() -> None:
        task = asyncio.ensure_future(tts.synthesize("The quick brown fox jumps over the lazy dog, " * 40))
        while not calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(calls) == 1  # more than three chunks were due; only the running one ran


@pytest.mark.parametrize("voice", ["../../etc/passwd", "/etc/passwd", "jf_alpha/../x", "jf_alpha+../../x",
                                   "jf_alpha+ja", "jf_alpha+", "JF_ALPHA", "jf_alpha ", "-w", "jf_alpha\n", ""])
def test_unlisted_voices_are_refused_before_espeak_or_the_model(voice: str) -> None:
    tts = KokoroTTS()
    with pytest.raises(BadRequest, match="no voice"):
        asyncio.run(tts.synthesize("hello", voice=voice or "nope"))
    assert tts._model is None  # nothing was loaded for it


def test_one_setting_makes_kokoro_the_default_voice_beside_the_other_offline_voices() -> None:
    router = create_tts(Settings(_env_file=None, tts_backend="kokoro"))
    assert router.default_voice == "kokoro:jf_alpha"
    assert router.choose("안녕하세요", None).id == "espeak:ko"  # Hangul still goes to the Korean default
    router = create_tts(Settings(_env_file=None))
    assert router.default_voice == "piper:en_US-joe-medium+female"  # unchanged: the lead picks the default
    assert {"kokoro:jf_alpha", "kokoro:jf_alpha+ko"} <= set(router.voices())
    threads = create_tts(Settings(_env_file=None, kokoro_threads=2)).backends["kokoro"]
    assert isinstance(threads, KokoroTTS) and threads.threads == 2
