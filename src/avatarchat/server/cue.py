"""The avatar's "Sorry, I didn't catch that." to a spoken turn with no words, instead of silence.

Said through the session's speech lane like any reply (same voice, same clips) when the avatar is idle, shown
as text either way (a ``not_heard`` event), and never written to the conversation's history: the turn held
nothing for the LLM to answer, and the cue answers nothing it said, so history stays user/assistant pairs of
real words (a reloaded page does not show the cue again).
"""

from __future__ import annotations

import logging

from avatarchat.errors import AvatarChatError
from avatarchat.events import NotHeard
from avatarchat.pipeline.reply import Reply
from avatarchat.pipeline.session import Session
from avatarchat.services import Services

log = logging.getLogger(__name__)


def cue_text(s: Services, session: Session) -> str:
    """The cue in the session's voice's language (Korean or English)."""
    try:
        language = s.tts.resolve(session.voice).language
    except AvatarChatError:
        language = None
    return s.settings.not_heard_text_ko if language == "ko" else s.settings.not_heard_text


async def not_heard(s: Services, session: Session) -> None:
    text = cue_text(s, session)
    lane = session.lane
    idle = lane is not None and not lane.speaking() and not s.draining
    if idle and lane is not None:
        _, wait_s = await s.speech_backlog(session.owner or None)
        idle = wait_s <= s.settings.max_speech_wait_s and lane.has_room()
    if not idle or lane is None:
        session.publish(NotHeard(session=session.id, text=text))
        return
    reply = Reply()  # answers no message of the history
    lane.begin(reply)
    session.publish(NotHeard(session=session.id, text=text, reply=reply.id))
    try:
        lane.submit(reply, text, s.tts.choose(text, session.voice).id, session.avatar)
    except AvatarChatError as exc:
        log.info("the not-heard cue of session %s… is text only: %s", session.label, exc.code)
    finally:
        lane.end(reply)
