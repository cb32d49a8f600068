"""A page (re)connects: what it gets before the live events, in Redis mode as embedded.

First ``session_state``: the replies still to be heard (their clips so far, and their text), so any page
resumes them, ``last_id``, the position it starts from, and the conversation's newest ``HISTORY_MAX`` messages
(each cut to ``HISTORY_CHARS``), so a reloaded page shows its log again. A page that says what it saw last
(``after``) then gets the events it missed, in order and once (``resumed`` tells whether the log still went
back that far, and the newest ``REPLAY_MAX`` at most, so the catch-up fits the outbox); the clips and
``speech_done`` of replies that are over are left out of it, as they would play late. Then the live events,
none repeated.
"""

from __future__ import annotations

import logging

from avatarchat.errors import StoreUnavailable
from avatarchat.events import SessionState
from avatarchat.pipeline.eventlog import event_key
from avatarchat.pipeline.outbox import Outbox
from avatarchat.pipeline.session import Session

log = logging.getLogger(__name__)
SPEECH = ("clip_ready", "speech_done")
REPLAY_MAX = 192  # of the outbox's 256 events: the rest is room for live events meanwhile
HISTORY_MAX = 40  # messages of the conversation in ``session_state`` (a reloaded page's log)
HISTORY_CHARS = 4000  # of each of them


async def attach(session: Session, after: str | None) -> Outbox:
    """A new outbox on ``session``, already holding what the page should get first (see the module doc)."""
    box = Outbox(holding=True)
    session.outboxes.add(box)  # from here every live event reaches it (held until the catch-up is in)
    position, replies = session.log.position, session.lane.state()
    missed, resumed, floor = [], None, position
    if after is not None:
        try:
            missed, resumed = await session.log.between(after, position)
        except StoreUnavailable:
            resumed = False  # Redis is down: the replies in the state are all this page gets
        if resumed or event_key(after) < event_key(position):
            floor = after  # else no event of this session had that id: forged, or from before a restart
        live = {r["reply"] for r in replies}
        missed = [e for e in missed if e["type"] not in SPEECH or e.get("reply") in live]
        if len(missed) > REPLAY_MAX:
            missed, resumed = missed[-REPLAY_MAX:], False
        log.info("session %s…: a page reconnected, %d events to catch up on", session.label, len(missed))
    history = [{"role": m.role, "content": m.content[:HISTORY_CHARS], "reply": m.turn}
               for m in session.history[-HISTORY_MAX:] if m.role in ("user", "assistant")]
    state = SessionState(session=session.id, replies=replies, last_id=position, resumed=resumed, history=history)
    box.open([state.wire(), *missed], floor=floor)
    return box
