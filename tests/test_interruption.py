"""The turn-taking rules without audio: which transcripts are backchannels, which turns interrupt a speaking
avatar, and what happens to each final (the socket-level behaviour is in test_voice_interruptions.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from avatarchat.asr.backchannel import Backchannels, noise_only
from avatarchat.asr.interruption import Heard, Interruption, TurnRules
from avatarchat.settings import Settings


@pytest.mark.parametrize("text", ["Uh huh.", "Uh-huh.", "uhhuh", "Mm-hmm.", "MMM.", "Mm-mm.", "Mm-m-m-m-m-m",
                                  "Okay", "OK.", "Yeah, yeah, okay.", "Right.", "Yes.", "I see.", "Ha-ha-ha.",
                                  "Oh, oh, oh.", "네.", "응", "아", "음...", "그래", "그래요.",
                                  # laughs as Whisper tiny.en wrote Piper's "Ha ha ha." (two voices, several takes)
                                  "A-ha-ha.", "A-ha-ha-ha", "Oh-hoh-hoh.", "Buh-huh-huh.", "Hahaha!", "He he."])
def test_backchannels_are_recognised_however_whisper_writes_them(text: str) -> None:
    assert Backchannels().is_backchannel(text)


@pytest.mark.parametrize("text", ["That's it.", "And then mom.", "Tell me more", "Yes please", "Okay, stop.",
                                  "No.", "Wait.", "(coughs)", "", "He has a hat.", "Aha, what?", "Haha, but why?"])
def test_words_that_are_not_backchannels_are_not(text: str) -> None:
    assert not Backchannels().is_backchannel(text)


def test_noise_marks_are_no_words() -> None:
    assert noise_only("(coughs)") and noise_only("[laughter] ♪") and noise_only("*sighs*") and noise_only("...")
    assert not noise_only("(coughs) stop")


def test_the_backchannel_list_is_a_setting(monkeypatch) -> None:
    monkeypatch.setenv("AVATARCHAT_BACKCHANNELS", "uh huh, 네")
    listed = Backchannels(Settings(_env_file=None).backchannels)
    assert listed.is_backchannel("Uh-huh.") and listed.is_backchannel("네.") and not listed.is_backchannel("Yeah.")


def test_a_real_interruption_has_confident_words_that_are_not_backchannels() -> None:
    rules = TurnRules()
    assert rules.real(Heard("Stop.", 0.3, -0.41)) and rules.real(Heard("Wait.", 0.25, -0.61))
    assert not rules.real(Heard("That's it.", 0.2, -0.74))  # Whisper's guess at "Uh."
    assert not rules.real(Heard("Ha ha, but...", 0.6, -1.22))  # a laugh
    assert rules.real(Heard("Ha ha, but...", 1.6, -1.22))  # long speech counts whatever its words
    assert not rules.real(Heard("Mm-hmm.", 0.6, -0.1)) and not rules.real(Heard("", 0.4))


class Avatar:
    """The socket's side of an ``Interruption``: what it was told."""

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.told = replies, []

    def interruption(self, **rules) -> Interruption:
        return Interruption(TurnRules(**rules), lambda: list(self.replies), lambda: self.told.append("yield"),
                            lambda: self.told.append("resume"), lambda held: self.told.append(("cancel", held)))


def hearing(*answers: Heard | Exception) -> Callable[[], Awaitable[Heard]]:
    """An ``Interruption.words_so_far`` that gives these transcripts in turn (an exception is raised)."""
    left = list(answers)

    async def words_so_far() -> Heard:
        answer = left.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return words_so_far


def test_a_backchannel_over_the_speaking_avatar_is_held_for_then_resumed_and_ignored() -> None:
    avatar = Avatar(["r1"])
    turns = avatar.interruption()
    turns.onset()
    turns.progress(0.3)
    assert avatar.told == ["yield"] and turns.holding
    assert turns.final(Heard("Uh-huh.", 0.3, -0.3)) == "ignore"
    assert avatar.told == ["yield", "resume"] and not turns.holding


def test_long_speech_cancels_without_waiting_for_words() -> None:
    avatar = Avatar(["r1", "r2"])
    turns = avatar.interruption()
    turns.onset()
    turns.progress(1.5)
    assert avatar.told == ["yield", ("cancel", ["r1", "r2"])]
    assert turns.final(Heard("", 1.8)) == "not_heard"  # it spoke over the avatar and held no words: the cue


async def test_words_heard_from_a_few_tenths_of_a_second_on_cancel_while_the_person_still_speaks() -> None:
    avatar = Avatar(["r1"])
    turns = avatar.interruption(check_s=0.4, recheck_s=0.15)
    turns.words_so_far = hearing(Heard("Mm.", 0.4, -0.5), Heard("Mm, tell me", 0.55, -0.2))
    turns.onset()
    turns.progress(0.34)
    await asyncio.sleep(0)
    assert avatar.told == ["yield"]  # too short to ask yet
    turns.progress(0.4)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield"]  # "Mm." is a backchannel: still held
    turns.progress(0.5)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield"]  # the next check is 0.15 s later
    turns.progress(0.55)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield", ("cancel", ["r1"])]
    assert turns.final(Heard("Mm, tell me more.", 1.2, -0.1)) == "answer"


async def test_words_are_checked_on_the_clock_since_the_onset_long_speech_on_speech_seconds() -> None:
    """"Wait, what did you say?": the pause after "Wait," is no speech, but the person has been talking."""
    avatar = Avatar(["r1"])
    turns = avatar.interruption(check_s=0.4, max_s=1.5)
    turns.words_so_far = hearing(Heard("Wait.", 0.3, -0.5))
    turns.onset()
    turns.progress(0.3, 0.36)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield"]
    turns.progress(0.3, 0.42)  # still 0.3 s of speech, 0.42 s since the onset: its words are checked
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield", ("cancel", ["r1"])]
    other = Avatar(["r2"])
    turns = other.interruption(check_s=0.4, max_s=1.5)
    turns.onset()
    turns.progress(1.0, 1.6)  # a pause counts for the checks, not for "long speech"
    assert other.told == ["yield"]
    turns.progress(1.5, 2.1)
    assert other.told == ["yield", ("cancel", ["r2"])]


async def test_words_so_far_that_are_only_function_words_wait_for_a_word_that_says_something() -> None:
    """Whisper tiny.en heard the default voice's "Mm hmm." cut at 0.4-0.5 s as "If I'm not." (-0.53 to -0.61)."""
    rules = TurnRules()
    assert not rules.real(Heard("If I'm not.", 0.5, -0.55), partial=True)
    assert not rules.real(Heard("If and them.", 0.6, -0.63))  # nor a short whole turn: the same hum, whole
    assert rules.real(Heard("If I'm not mistaken", 1.6, -0.8))  # long speech counts whatever its words
    assert not rules.real(Heard("If Mm-hmm.", 0.6, -0.38))  # backchannel words say nothing either
    assert not rules.real(Heard("Yes, I do.", 0.7, -0.2)) and rules.real(Heard("Yes, stop.", 0.7, -0.2))
    assert rules.real(Heard("What?", 0.3, -0.3)) and rules.real(Heard("No.", 0.3, -0.4))
    assert rules.real(Heard("Tell me", 0.5, -0.3), partial=True) and rules.real(Heard("Wait.", 0.5, -0.5), partial=True)
    avatar = Avatar(["r1"])
    turns = avatar.interruption()
    turns.words_so_far = hearing(Heard("If I'm not.", 0.5, -0.55), Heard("If I'm not mistaken", 1.0, -0.3))
    turns.onset()
    turns.progress(0.5)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield"]
    turns.progress(1.0)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield", ("cancel", ["r1"])]


def test_while_the_avatar_is_idle_every_worded_turn_is_answered_and_an_empty_one_gets_the_cue() -> None:
    avatar = Avatar([])
    turns = avatar.interruption()
    for text, verdict in (("Yes.", "answer"), ("(coughs)", "not_heard"), ("", "not_heard"), ("Why?", "answer")):
        turns.onset()
        assert turns.final(Heard(text, 0.3, -0.3)) == verdict
    assert avatar.told == []


def test_a_short_real_interruption_cancels_at_its_final_and_is_answered() -> None:
    avatar = Avatar(["r1"])
    turns = avatar.interruption()
    turns.onset()
    assert turns.final(Heard("Stop.", 0.3, -0.4)) == "answer"
    assert avatar.told == ["yield", ("cancel", ["r1"])]


async def test_a_check_superseded_by_a_newer_transcription_is_asked_again_at_the_next_frame() -> None:
    from avatarchat.asr.budget import Superseded

    avatar = Avatar(["r1"])
    turns = avatar.interruption()
    turns.words_so_far = hearing(Superseded(), Heard("Tell me", 0.6, -0.2))
    turns.onset()
    turns.progress(0.5)
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield"]
    turns.progress(0.55)  # the next frame, not half a second later
    await asyncio.sleep(0.01)
    assert avatar.told == ["yield", ("cancel", ["r1"])]


def test_a_turn_whose_recognition_failed_leaves_no_hold_behind() -> None:
    avatar = Avatar(["r1"])
    turns = avatar.interruption()
    turns.onset()  # turn 1: its recognition fails, no final comes
    turns.onset()  # turn 2, while still held: the page is told to hold again
    assert avatar.told == ["yield", "yield"]
    assert turns.final(Heard("Yeah.", 0.3, -0.3, turn=2)) == "ignore"
    assert avatar.told == ["yield", "yield", "resume"] and not turns.holding
