"""The kokoro backend against its real model: espeak-ng's phonemes in Kokoro's symbols, speech out, cancellation."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import pytest

from avatarchat.asr.whisper import WhisperASR
from avatarchat.errors import BadRequest
from avatarchat.languages import voice_language
from avatarchat.render.meshwarp import MeshWarpRenderer
from avatarchat.render.visemes import calibration_words
from avatarchat.settings import Settings
from avatarchat.tts import create_tts, kokoro_graph, kokoro_model
from avatarchat.tts.kokoro import SPEAKERS, KokoroTTS
from avatarchat.tts.kokoro_ipa import to_kokoro, unknown, with_punctuation
from avatarchat.tts.silence import PAUSE_MAX_S
from tests.voice_audio import pauses_s, silence, speak

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
    tts = KokoroTTS(cache_dir=tmp_path_factory.mktemp("models"), alone_threads=2)
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


def test_korean_ipa_passes_through_but_for_its_rewrites_and_fits_the_vocabulary() -> None:
    vocab = kokoro_model.vocabulary()
    lines = _espeak_ipa("안녕하세요. 저는 아바타입니다. 날씨가 좋네요! 아버지가 가지를 좋아해요. "
                        "서울에서 한국어를 말할 수 있어요. 지하철역에 갔어요. 커피 한 잔 주세요.", "ko")
    assert unknown("".join(lines), vocab) == {"ɫ", "ʑ", "-"}  # what KOREAN_REWRITES is for, beside the sounds
    mapped = [to_kokoro(line, "ko") for line in lines]

    def same(p: str) -> str:  # what the rewrites may change, made alike
        return p.replace("ɡ", "q").replace("k", "q").replace("ʰ", "h")

    plain = [line.strip().replace("ɫ", "l").replace("dʑ", "ʥ").replace("-", "")
             .replace("ʌ", "ɔ").replace("ɐ", "a").replace("ɛ", "e") for line in lines]
    assert [same(m) for m in mapped] == [same(p) for p in plain]  # only velars and aspiration differ beyond these
    assert unknown("".join(mapped), vocab) == set()
    assert "q" not in "".join(mapped) and not {"ʌ", "ɐ", "ɛ"} & set("".join(mapped))
    assert "ʰ" in "".join(mapped)  # 커피, 지하철: aspirated stops as one symbol


def test_espeaks_korean_velar_q_becomes_g_between_vowels_and_k_elsewhere() -> None:
    assert to_kokoro("pˈiqɐ", "ko") == "pˈiɡa"  # 비가
    assert to_kokoro("ˈʌndʌq wˈiɾo", "ko") == "ˈɔndɔk wˈiɾo"  # 언덕 위로: a word's end, not run into the next
    assert to_kokoro("ɕˈiqˌɐn", "ko") == "ɕˈiɡˌan"  # a stress mark between them
    assert to_kokoro("tɕˈʌnjʌqnˈɯtke", "ko") == "tɕˈɔnjɔknˈɯtke"
    assert to_kokoro("pˈiqɐ", "en") == "pˈiqə"  # English is not touched by the Korean rules


def test_korean_vowels_and_aspirated_stops_are_said_as_korean_says_them() -> None:
    assert to_kokoro("khˈʌphi", "ko") == "kʰˈɔpʰi"  # 커피: ㅓ is not English's strut, and kh is one sound
    assert to_kokoro("ɡˌimtʃhi", "ko") == "ɡˌimtʃʰi"  # 김치
    assert to_kokoro("hˈɐnɯl", "ko") == "hˈanɯl"  # 하늘: an h that begins a word stays h
    assert to_kokoro("mɛˈil", "ko") == "meˈil"  # 매일: ㅐ and ㅔ are one vowel
    assert to_kokoro("khˈʌphi", "en") == "khˈʌphi"


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


def test_korean_speech_has_no_pause_a_speaker_would_not_make(kokoro: KokoroTTS) -> None:
    """Kokoro stops for 0.5-0.7 s between these phrases (after 도서관은, 배에); the pause is cut to PAUSE_MAX_S."""
    for text in ("도서관은 아침 일찍 문을 열고 저녁에 닫습니다.",
                 "박물관에 오래된 배에 관한 새로운 전시가 열렸습니다."):
        speech = asyncio.run(kokoro.synthesize(text, "jf_nezumi+ko"))
        pauses = pauses_s(speech)
        assert pauses and max(pauses) <= PAUSE_MAX_S + 0.01, (text, pauses)
        assert 3.0 < speech.duration_s < 5.5


def test_a_call_made_alone_runs_on_a_second_session_with_more_threads_and_says_the_same(kokoro: KokoroTTS) -> None:
    text = "안녕하세요. 만나서 반갑습니다."
    shared = asyncio.run(kokoro.synthesize(text, "jf_alpha+ko"))
    alone = asyncio.run(kokoro.synthesize_alone(text, "jf_alpha+ko"))
    sessions = [kokoro._loaded()[0], kokoro._alone]
    assert [s.get_session_options().intra_op_num_threads for s in sessions] == [1, 2]  # type: ignore[union-attr]
    # The same model: the same speech, up to float rounding in the threads' sums.
    assert abs(alone.duration_s - shared.duration_s) < 0.05 * shared.duration_s
    n = min(len(alone.pcm), len(shared.pcm))
    assert np.corrcoef(alone.pcm[:n].astype(np.float64), shared.pcm[:n].astype(np.float64))[0, 1] > 0.95


def test_cancellation_stops_between_chunks(kokoro: KokoroTTS) -> None:
    calls: list[int] = []
    infer = kokoro.infer

    class Counting(KokoroTTS):
        def infer(self, ids, speaker, alone=False):
            calls.append(len(ids))
            return infer(ids, speaker, alone)

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


def test_defaults_piper_for_english_kokoro_for_korean_and_one_setting_makes_kokoro_speak_english() -> None:
    """The defaults BENCHMARKS.md chose: English stays Piper (Kokoro's first chunk costs ~4x Piper's, past the
    typed-latency target); Korean is Kokoro's jf_nezumi (the only offline Korean voice Whisper can read)."""
    router = create_tts(Settings(_env_file=None))
    assert router.default_voice == "piper:en_US-joe-medium+female"
    assert router.choose("안녕하세요", None).id == "kokoro:jf_nezumi+ko"
    assert router.resolve("kokoro:jf_nezumi+ko").wire()["gender"] == "female"  # the default avatar is a woman
    assert {"kokoro:jf_alpha", "kokoro:jf_alpha+ko"} <= set(router.voices())
    router = create_tts(Settings(_env_file=None, tts_backend="kokoro"))
    assert router.default_voice == "kokoro:jf_gongitsune"  # the best-scoring English Kokoro voice, a woman's
    assert router.choose("안녕하세요", None).id == "kokoro:jf_nezumi+ko"
    fast = create_tts(Settings(_env_file=None, voice_ko="espeak:ko"))  # the busy server's Korean voice
    assert fast.choose("안녕하세요", None).id == "espeak:ko"
    threads = create_tts(Settings(_env_file=None, kokoro_threads=2)).backends["kokoro"]
    assert isinstance(threads, KokoroTTS) and threads.threads == 2


def _ops(path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_the_server_runs_a_rewritten_graph_with_int8_matmul_convolutions_and_the_same_speech(
        kokoro: KokoroTTS) -> None:
    """ConvInteger (uint8 x uint8, no fast kernel in onnxruntime) becomes im2col + MatMulInteger (uint8 x int8,
    VNNI/AMX): the same integer products, so the shipped graph and the rewritten one say the same thing."""
    cache = kokoro._cache_dir
    shipped, fast = kokoro_model.model_file(cache), kokoro_model.fast_model_file(cache)
    assert fast != shipped and kokoro_model.expected_sha256()[:16] in fast.name
    assert f"-mm{kokoro_graph.VERSION}." in fast.name  # a changed rewrite gets a new file
    before, after = _ops(shipped), _ops(fast)
    assert before["ConvInteger"] == 87 and after.get("ConvInteger", 0) == 3  # the strided ones stay
    assert after["MatMulInteger"] == before["MatMulInteger"] + 84
    mtime = fast.stat().st_mtime_ns
    assert kokoro_model.fast_model_file(cache) == fast and fast.stat().st_mtime_ns == mtime  # built once

    _, vocab, styles = kokoro._loaded()
    ids = kokoro.chunks(asyncio.run(kokoro.phonemes("Good morning, how are you?", "en")), vocab)[0]
    tokens = [0, *ids, 0]
    feed = {"tokens": np.array([tokens], np.int64), "style": styles["jf_alpha"][len(ids) - 1].reshape(1, 256),
            "speed": np.array([1.0], np.float32)}
    old = kokoro_model.load_session(shipped, 1).run(None, feed)[0].ravel()
    new = kokoro_model.load_session(fast, 1).run(None, feed)[0].ravel()
    assert len(new) == len(old)
    assert np.corrcoef(old, new)[0, 1] > 0.97  # measured 0.98-0.99; another sentence or speaker: ~0


def test_the_korean_default_calibrates_its_own_mouth_shapes(kokoro: KokoroTTS, tmp_path) -> None:
    """The start of a Korean reply calibrates kokoro:jf_nezumi+ko with its own words (아, 이, 우, 음); the shapes
    it learns move the mouth on Korean speech: open on the vowels, wide or round somewhere, closed at rest."""
    voice = "kokoro:jf_nezumi+ko"
    renderer = MeshWarpRenderer(cache_dir=tmp_path)
    words = renderer.calibration_words(voice)
    assert set(words.values()) == set(calibration_words("espeak:ko"))
    renderer.calibrate(voice, {shape: asyncio.run(kokoro.synthesize(word, "jf_nezumi+ko"))
                               for shape, word in words.items()})
    track = renderer.track(asyncio.run(kokoro.synthesize("아이가 우유를 마셔요. 음, 좋아요!", "jf_nezumi+ko")), voice)
    assert track.open.max() > 0.5 and (track.open < 0.1).any()
    assert track.wide.max() > 0.2 or track.round.max() > 0.2


def test_preload_loads_kokoro_only_when_a_default_voice_is_kokoros(kokoro: KokoroTTS, tmp_path) -> None:
    espeak = create_tts(Settings(_env_file=None, model_cache_dir=tmp_path, voice_ko="espeak:ko"))
    espeak.warm_up()
    espeak.preload()
    assert espeak.backends["kokoro"]._model is None  # nobody's default: not loaded, not even joined
    assert not list(tmp_path.glob("kokoro*.onnx"))  # (the Piper voice's rewritten graph is kept here too)
    korean = create_tts(Settings(_env_file=None, model_cache_dir=kokoro._cache_dir))
    korean.preload()
    session = korean.backends["kokoro"]._model[0]
    options = session.get_session_options()  # the renderer keeps its cores: one sleeping thread by default
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert korean.backends["kokoro"].model_path == kokoro_model.fast_model_file(kokoro._cache_dir)  # rewritten
