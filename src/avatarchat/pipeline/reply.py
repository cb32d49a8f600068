"""One answer of the avatar, from the LLM's first word until the page has played its last clip.

A reply is *speaking* until it has been heard, not merely rendered: our renderer finishes a 15 s answer in
about a second, and a barge-in must still stop it while it plays. The page reports each clip it starts and
finishes; if it stays silent (an old page, a closed tab), the reply counts as played out once its total
clip duration has passed since its first clip started (or was announced), plus a grace period.

State is private behind methods (after livekit's ``SpeechHandle``): the lane announces clips, the socket
reports playback, and anyone may ``cancel``; nobody writes the flags directly.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from avatarchat.data import Message

PLAYBACK_GRACE_S = 3.0  # a page that reports nothing: how long past the clips' total length a reply may speak
LATE_S = 0.04  # a clip later than this (a frame at 25 fps) leaves the avatar visibly still: counted as late
CHARS_PER_SECOND = 14.0  # speech rate used to guess a sentence's length before it is voiced (110 chars ~ 8 s)


def new_id() -> str:
    """128 random bits, hex: reply, job and clip ids (clip URLs are unguessable)."""
    return uuid.uuid4().hex


class Reply:
    """The handle of one reply: its sentences, announced clips, playback reports and cancellation."""

    def __init__(self, user_message: Message | None = None, reply_id: str | None = None) -> None:
        """``reply_id`` names a reply that already exists elsewhere (another node's, or a worker's copy)."""
        self.id = reply_id or new_id()
        self.user_message = user_message  # the history entry this reply answers (its answer goes right after)
        self.started = time.perf_counter()
        self.started_at = time.monotonic()  # the same instant on the clock deadlines use
        self.cancelled_at: float | None = None
        self._stop = threading.Event()  # read by render threads: a barge-in stops them within a frame
        self._stopped: asyncio.Event | None = None  # the same, for coroutines (created on the loop on demand)
        self._texts: dict[int, str] = {}
        self._clips: dict[int, dict[str, Any]] = {}
        self._durations: dict[int, float] = {}
        self._voiced: dict[int, float] = {}  # seq -> speech length, known once it is voiced
        self._failed: set[int] = set()
        self._started_seqs: set[int] = set()
        self._ended_seqs: set[int] = set()
        self._first_play: float | None = None
        # When a page playing this reply's clips back to back from the first one's announce will have played
        # every clip announced so far: a later clip announced after it comes late (``announce``).
        self._needed_by: float | None = None
        self._written = False  # the LLM has finished: no more sentences
        self._rendered = False  # every sentence is announced or failed (speech_done sent)
        self._played_out = False
        self._skipped = False
        self._held = False  # provisional (pipeline/provisional.py): worked on, not yet to be heard

    # -- cancellation ---------------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Stop everything this reply still does; True if this call cancelled it (False: already over)."""
        if self._stop.is_set() or self._played_out:
            return False
        self.cancelled_at = time.perf_counter()
        self._stop.set()
        if self._stopped is not None:
            self._stopped.set()
        return True

    def cancel_speech(self) -> None:
        """Admission control: this reply's text is sent, its speech is not (the server is too busy)."""
        self._skipped = True

    @property
    def speech_skipped(self) -> bool:
        return self._skipped

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_event(self) -> threading.Event:
        """For render and encode threads, which check it between frames."""
        return self._stop

    async def wait_cancelled(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.Event()
            if self._stop.is_set():
                self._stopped.set()
        await self._stopped.wait()

    # -- provisional (an answer started before its spoken turn was over) -----------------------------------
    def hold(self) -> None:
        """Provisional: the lane works on it, but it is not speaking (nothing to hear, nothing a barge-in
        stops or stores) until ``release``."""
        self._held = True

    def release(self) -> None:
        """Committed: it speaks from now on. Clips announced while it was held reach the page only now, so
        the wait for a silent page's playback counts from here."""
        self._held = False
        if self._first_play is not None and not self._started_seqs:
            self._first_play = time.monotonic()
        if self._clips:
            self._needed_by = time.monotonic() + sum(self._durations.values())

    @property
    def held(self) -> bool:
        return self._held

    @property
    def playing(self) -> bool:
        """A clip of it has reached the page (or is on its way) and it is not held: only then can a later clip
        come late (a first clip kept back by the lane's start-up buffer waits for the next one)."""
        return self._first_play is not None and not self._held

    # -- sentences and clips (the lane) ---------------------------------------------------------------------
    def add_sentence(self, text: str) -> int:
        """Register the next sentence; returns its ``seq``."""
        seq = len(self._texts)
        self._texts[seq] = text
        return seq

    @property
    def sentences(self) -> int:
        return len(self._texts)

    def voiced(self, seq: int, duration_s: float) -> None:
        """Sentence ``seq`` has been voiced: its real length replaces the guess in later deadlines."""
        self._voiced[seq] = duration_s

    def due(self, seq: int) -> float:
        """When clip ``seq`` must start playing (monotonic seconds): the first clip as soon as the person
        asked (its /chat), each later one when the clips before it will have played. Lengths not yet known are
        guessed from the text."""
        start = self._first_play if self._first_play is not None else self.started_at
        ahead = 0.0
        for s in range(seq):
            if s in self._failed:
                continue
            known = self._durations.get(s, self._voiced.get(s))
            ahead += known if known is not None else len(self._texts.get(s, "")) / CHARS_PER_SECOND
        return start + ahead

    def finish_writing(self) -> None:
        self._written = True

    def announce(self, seq: int, event: dict[str, Any], duration_s: float) -> float:
        """Clip ``seq`` is ready for the page. Returns how late it comes: the seconds since a page playing
        this reply's clips back to back, from the first one's announce, finished the ones announced before it
        (0: in time; a reply's first clip, and clips of a held reply, are never late). The benchmarks count
        late clips the same way, from the client's side."""
        self._clips[seq] = event
        self._durations[seq] = duration_s
        now = time.monotonic()
        if self._first_play is None:
            self._first_play = now  # until the page says when it really started
        if self._held:
            return 0.0  # it reaches the page at ``release``
        late = 0.0 if self._needed_by is None else max(0.0, now - self._needed_by)
        self._needed_by = max(now, self._needed_by or now) + duration_s
        return late

    def fail(self, seq: int) -> None:
        self._failed.add(seq)

    def finish_rendering(self) -> None:
        self._rendered = True
        self._check_played_out()

    @property
    def clips(self) -> int:
        return len(self._clips)

    def waiting(self) -> int:
        """Sentences registered and neither announced nor failed yet."""
        return len(set(self._texts) - set(self._clips) - self._failed)

    @property
    def rendered(self) -> bool:
        return self._rendered

    # -- playback (the page's reports) ----------------------------------------------------------------------
    def played(self, seq: int, ended: bool) -> None:
        """The page started (or finished) clip ``seq``. Reports of unknown seqs are ignored."""
        if seq not in self._clips:
            return
        if not self._started_seqs:
            self._first_play = time.monotonic()
        self._started_seqs.add(seq)
        if ended:
            self._ended_seqs.add(seq)
        self._check_played_out()

    def _check_played_out(self) -> None:
        if self._rendered and not self.cancelled and set(self._texts) <= self._ended_seqs | self._failed:
            self._played_out = True

    def speaking(self, now: float | None = None) -> bool:
        """Still to be heard: being written, rendered, or played (or assumed played, if the page is silent)."""
        if self.cancelled or self._played_out or self._held:
            return False
        if not self._rendered or self._first_play is None:
            return not (self._rendered and not self._clips)  # nothing to play at all: over
        now = time.monotonic() if now is None else now
        if now - self._first_play > sum(self._durations.values()) + PLAYBACK_GRACE_S:
            self._played_out = True  # the page never said; its clips are long over
            return False
        return True

    def heard_text(self) -> str:
        """The sentences the page started playing, in order: what the person actually heard."""
        return " ".join(self._texts[s] for s in sorted(self._started_seqs))

    def state(self) -> dict[str, Any]:
        """What a (re)connecting page needs to resume this reply."""
        return {"reply": self.id, "clips": [self._clips[s] for s in sorted(self._clips)],
                "failed": sorted(self._failed), "played": sorted(self._started_seqs),
                "ended": sorted(self._ended_seqs), "done": self._rendered,
                "sentences": self.sentences if self._written else None, "text": " ".join(self.texts())}

    def texts(self) -> list[str]:
        """Every sentence so far, in seq order."""
        return [self._texts[s] for s in sorted(self._texts)]

    @classmethod
    def copy_of(cls, state: dict[str, Any], texts: list[str]) -> Reply:
        """Another process's reply, rebuilt from its ``state()`` and ``texts()`` (Redis mode: a node that
        joins a session while a reply of it is still being heard)."""
        reply = cls(reply_id=state["reply"])
        for text in texts:
            reply.add_sentence(text)
        for clip in state["clips"]:
            reply.announce(clip["seq"], clip, clip["duration_s"])
        for seq in state["failed"]:
            reply.fail(seq)
        ended = set(state.get("ended", ()))
        for seq in state["played"]:
            reply.played(seq, ended=seq in ended)
        if state["sentences"] is not None:
            reply.finish_writing()
        if state["done"]:
            reply.finish_rendering()
        return reply

    def ms_since_start(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)
