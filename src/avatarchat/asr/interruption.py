"""Interruptions that are meant: the avatar yields at once to a voice, and stops only for a real interruption.

People talking over a speaker mostly do not want the floor: "uh-huh", "yeah", a laugh or a cough say "go on".
So at the onset of speech while the avatar speaks it only *yields* (the page ducks the voice and holds the clip
at its frame: a ``yield`` event), and the reply is cancelled only when the interruption is real:

- words that are not a backchannel (``backchannel.py``): checked on the turn so far ``check_s`` (0.4 s) after
  its onset, again every ``recheck_s`` (0.15 s), and on the turn's final transcript: a real question is
  cancelled within ~0.15 s of the first check that reads it, and a check half a second later would miss the
  700 ms the person should wait at most (a question's first word, "Wait,", read a hair under the
  log-probability floor, and its next check cancelled it at ~0.9 s); the words so far, and a whole turn
  shorter than ``max_s``, count only with a word beyond function words and one-word backchannels in them
  (``Backchannels.has_content``; "If mm-hmm." has none): Whisper tiny.en heard the default voice's 0.57 s "Mm
  hmm." cut at 0.4-0.5 s as "If I'm not." and whole as "If and them." (log-probability -0.53 to -0.63, as
  confident as real short words), while the start of a real sentence loses nothing by waiting for its next
  word, and short real interruptions ("Stop", "Wait", "No", "What?", "Hold on") have one;
- or speech that goes on for ``max_s`` (1.5 s) whatever its words (someone talking that Whisper cannot follow).

Speech alone does not cancel at 0.5 s, because backchannels last that long: synthetic "mm-hmm" and laughs
measured 0.54-0.76 s of VAD speech; their words are checked instead ("Tell me more" cancels then). In an
offline sweep of 24 English backchannels in five takes each, cut at 0.35-0.55 s (552 partial transcripts), none
was taken for a real interruption.
A turn (shorter than ``max_s``) whose transcript has a low mean token log-probability (below ``min_logprob``)
is not an interruption either: Whisper invents words for sounds it cannot place ("Uh." -> "That's it.", "Hmm."
-> "Done.", a laugh -> "Ha ha, but...", at -0.68 to -1.4), while short real interruptions ("Stop.", "Wait.",
"What?", "No.", "Hold on.") measured -0.16 to -0.61 and sentences better than -0.2; and the costs are uneven:
a real interruption missed is said again (the avatar goes on, the person speaks longer, and ``max_s`` of speech
cancels whatever the words), a false one throws the answer away. Otherwise the avatar resumes where it
held (a ``resume`` event), and the backchannel is neither answered nor kept in history.

While the avatar is idle nothing is held, and every turn with words is answered, backchannels too: a "yes" or
"okay" after the avatar's question is an answer. A turn with no words gets the "didn't catch that" cue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from avatarchat.asr.backchannel import Backchannels, noise_only
from avatarchat.asr.budget import Superseded

log = logging.getLogger(__name__)

Verdict = Literal["answer", "ignore", "not_heard"]


@dataclass(frozen=True)
class Heard:
    """A spoken turn: its transcript, how long it was speech (VAD windows, pauses left out), Whisper's mean
    token log-probability of the transcript (0.0 when there is none) and the listener's number of the turn (0:
    not known; then finals are taken to come one per turn, in order)."""

    text: str
    speech_s: float = 0.0
    logprob: float = 0.0
    turn: int = 0


@dataclass(frozen=True)
class TurnRules:
    check_s: float = 0.4
    recheck_s: float = 0.15
    max_s: float = 1.5
    min_logprob: float = -0.65
    backchannels: Backchannels = field(default_factory=Backchannels)

    def real(self, heard: Heard, partial: bool = False) -> bool:
        """Does this turn (``partial``: its words so far, the person still speaking) take the floor from a
        speaking avatar?"""
        if noise_only(heard.text) or self.backchannels.is_backchannel(heard.text):
            return False
        if (partial or heard.speech_s < self.max_s) and not self.backchannels.has_content(heard.text):
            return False
        return not (heard.speech_s < self.max_s and heard.logprob < self.min_logprob)


class Interruption:
    """One socket's spoken turns against the avatar's speech. The socket wires it: ``speaking()`` lists the
    replies still to be heard, ``on_yield()`` / ``on_resume()`` tell the page, ``cancel(held)`` stops the
    replies held for this turn. The listener reports ``onset``, ``progress`` (seconds of speech in the turn)
    and each final (``final`` says what to do with it); ``words_so_far`` transcribes the turn up to now."""

    def __init__(self, rules: TurnRules, speaking: Callable[[], list[str]], on_yield: Callable[[], None],
                 on_resume: Callable[[], None], cancel: Callable[[list[str]], None]) -> None:
        self.rules = rules
        self._speaking, self._on_yield, self._on_resume, self._cancel_replies = speaking, on_yield, on_resume, cancel
        self.words_so_far: Callable[[], Awaitable[Heard]] | None = None
        self._held: list[str] = []  # the replies held for the current turn; empty: the avatar is not yielding
        self._turns = 0
        self._finals = 0
        self._held_turns: set[int] = set()  # turns that began while the avatar held for them
        self._cancelled_by = 0  # the turn whose speech cancelled the held replies
        self._next_check = rules.check_s
        self._check: asyncio.Task | None = None

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def held_this_turn(self) -> bool:
        """Whether the avatar yielded for the current turn (or still holds for an earlier one)."""
        return bool(self._held) or self._turns in self._held_turns

    def onset(self) -> None:
        self._turns += 1
        self._next_check = self.rules.check_s
        self._stop_check()
        if not self._held:
            self._held = self._speaking()
        if self._held:
            self._on_yield()  # again for each turn while held: a page that let go (its own time limit) holds again
            self._held_turns.add(self._turns)

    def progress(self, speech_s: float, elapsed_s: float | None = None) -> None:
        """``speech_s`` of speech so far in the current turn, ``elapsed_s`` since its onset (pauses included;
        None: the same as ``speech_s``). Long speech is counted in speech, the words are checked on the clock:
        "Wait, what did you say?" has a pause after "Wait," that speech seconds leave out, so its check at 0.45 s
        of speech came 0.8 s after the onset, too late to cancel within 0.7 s when it read under the floor."""
        if not self._held:
            return
        at = speech_s if elapsed_s is None else elapsed_s
        if speech_s >= self.rules.max_s:
            self._cancel("long speech")
        elif at >= self._next_check and self.words_so_far is not None \
                and (self._check is None or self._check.done()):
            self._next_check = at + self.rules.recheck_s
            self._check = asyncio.ensure_future(self._check_words(self._turns))

    async def _check_words(self, turn: int) -> None:
        assert self.words_so_far is not None
        try:
            heard = await self.words_so_far()
        except Superseded:  # a newer speculative transcription took its place: ask again at the next frame
            if turn == self._turns:
                self._next_check = 0.0
            return
        except Exception:  # noqa: BLE001 - failed: the turn's final decides instead
            return
        if self._held and turn == self._turns and self.rules.real(heard, partial=True):
            self._cancel(f"words {heard.text[:40]!r}")

    def final(self, heard: Heard) -> Verdict:
        """What to do with a turn's final transcript: ``answer`` it, ``ignore`` it (a backchannel or noise the
        avatar held for: it resumes), or say it was ``not_heard`` (no words, and the avatar was not held)."""
        self._finals += 1
        turn = heard.turn or self._finals  # (a turn whose recognition failed has no final)
        newer = turn < self._turns  # another turn has started since: it holds the avatar now
        was_held = turn in self._held_turns
        self._held_turns.discard(turn)
        if self._held:
            if self.rules.real(heard):
                self._stop_check()
                self._cancel(f"words {heard.text[:40]!r}")
                return "answer"
            if not newer:  # (a newer turn holds the avatar now: that one decides)
                self._stop_check()
                self._held = []
                self._on_resume()
            return "ignore"
        if was_held and self._cancelled_by != turn and not self.rules.real(heard):
            return "ignore"  # a backchannel to a reply something else (a newer turn, a typed message) stopped
        return "not_heard" if noise_only(heard.text) else "answer"

    def _cancel(self, why: str) -> None:
        held, self._held = self._held, []
        self._cancelled_by = self._turns
        log.info("real interruption (%s): cancelling %d replies", why, len(held))
        self._cancel_replies(held)

    def _stop_check(self) -> None:
        if self._check is not None and not self._check.done():
            self._check.cancel()
        self._check = None

    def close(self) -> None:
        self._stop_check()
