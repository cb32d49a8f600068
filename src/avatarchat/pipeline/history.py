"""A session's history as the LLM sees it, and as entries that merge when several nodes add to it.

In memory, history is a list of messages trimmed to a number of turns and a token budget. In Redis mode it
is stored as a list of *entries*, each appended once and never rewritten: a user message, an answer, or a
forgotten turn, each keyed by its turn (the id of the reply that answers the user message). Two nodes that
take one session's messages at the same moment both append, and ``rebuild`` turns any such list back into
messages: turns in the order their user messages arrived, each with its best answer (what the person heard
of an interrupted reply beats the text that was written; otherwise the later one wins).
"""

from __future__ import annotations

from typing import Any

from avatarchat.data import Message
from avatarchat.writing import CJK

MESSAGE_OVERHEAD_TOKENS = 4  # role and framing of one chat message, as OpenAI counts them
Entry = dict[str, Any]


def estimate_tokens(text: str) -> int:
    """A cheap, tokenizer-free token count: one per Hangul, kana or CJK character, one per 4 other characters.

    BPE tokenizers give English about 4 characters a token and Korean or Chinese about one character a token
    (often more), so this errs on the low side for CJK and is close for Latin text.
    """
    wide = len(CJK.findall(text))
    return wide + -(-(len(text) - wide) // 4)


def trim(history: list[Message], turns: int, token_budget: int) -> list[Message]:
    """To ``turns`` turns, then to ``token_budget`` estimated tokens (0: no limit).

    The token trim never drops the newest user message (nor what follows it), and leaves the history
    starting at a user message, which some chat templates require.
    """
    keep = turns * 2
    if keep and len(history) > keep:
        history = history[len(history) - keep:]
    if not token_budget:
        return history
    users = [i for i, m in enumerate(history) if m.role == "user"]
    newest_user = users[-1] if users else len(history) - 1
    sizes = [estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in history]
    total, drop = sum(sizes), 0
    while total > token_budget and drop < newest_user:
        total -= sizes[drop]
        drop += 1
    if drop:
        while drop < newest_user and history[drop].role != "user":
            drop += 1
        history = history[drop:]
    return history


def asked(turn: str, content: str) -> Entry:
    return {"turn": turn, "role": "user", "content": content}


def answered(turn: str, content: str, heard: bool) -> Entry:
    """``heard``: what the person heard of an interrupted reply (it beats the written text)."""
    return {"turn": turn, "role": "assistant", "content": content, "heard": heard}


def forgotten(turn: str) -> Entry:
    """The turn's reply failed: its user message goes, so two user messages never follow each other."""
    return {"turn": turn, "forget": True}


def rebuild(entries: list[Entry]) -> list[Message]:
    """Messages from entries in the order they were appended (see the module doc). Malformed entries, and
    answers whose user message was trimmed away, are skipped."""
    order: list[str] = []
    asks: dict[str, str] = {}
    answers: dict[str, tuple[bool, str]] = {}
    gone: set[str] = set()
    for e in entries:
        turn, content = e.get("turn"), e.get("content")
        if not isinstance(turn, str) or not turn:
            continue
        if e.get("forget") is True:
            gone.add(turn)
        elif not isinstance(content, str):
            continue
        elif e.get("role") == "user" and turn not in asks:
            asks[turn] = content
            order.append(turn)
        elif e.get("role") == "assistant":
            heard = e.get("heard") is True
            best = answers.get(turn)
            if best is None or heard or not best[0]:
                answers[turn] = (heard, content)
    messages: list[Message] = []
    for turn in order:
        if turn in gone:
            continue
        messages.append(Message(role="user", content=asks[turn], turn=turn))
        if turn in answers:
            messages.append(Message(role="assistant", content=answers[turn][1], turn=turn))
    return messages


class History:
    """A session's messages, trimmed; with ``shared`` it also records each change as an entry until ``take``
    hands them to the store (Redis mode)."""

    def __init__(self, turns: int, token_budget: int, shared: bool = False) -> None:
        self.turns = turns
        self.token_budget = token_budget
        self.messages: list[Message] = []
        self._unsaved: list[Entry] | None = [] if shared else None

    def remember(self, role: str, content: str, turn: str = "") -> Message:
        """Append a message, then trim the oldest; returns the stored message. ``turn``: the reply answering
        it (a user message) or that it is (an answer)."""
        message = Message(role=role, content=content, turn=turn)  # type: ignore[arg-type]
        self.messages.append(message)
        if turn:
            self._record(asked(turn, content) if role == "user" else answered(turn, content, heard=False))
        self._trim()
        return message

    def answer(self, turn: str, user: Message | None, text: str, heard: bool = False) -> None:
        """Store (or replace) the answer of ``turn`` right after its user message (``user``, or the one read
        back from the store with that turn), so history stays in the order things were said."""
        self._record(answered(turn, text, heard))
        index = next((i for i, m in enumerate(self.messages) if _asks(m, user, turn)), None)
        if index is None:
            return  # trimmed away meanwhile (or another node's turn this node has not read yet)
        message = Message(role="assistant", content=text, turn=turn)
        after = index + 1
        if after < len(self.messages) and self.messages[after].role == "assistant":
            self.messages[after] = message
        else:
            self.messages.insert(after, message)
        self._trim()

    def forget(self, message: Message | None) -> None:
        """Drop a user message whose reply failed, so two user messages never follow each other."""
        if message is None:
            return
        if message.turn:
            self._record(forgotten(message.turn))
        self.messages = [m for m in self.messages if not _asks(m, message, message.turn)]

    def take(self) -> list[Entry]:
        """The entries recorded since the last ``take`` (``put_back`` returns them if saving failed)."""
        entries, self._unsaved = self._unsaved or [], [] if self._unsaved is not None else None
        return entries

    def put_back(self, entries: list[Entry]) -> None:
        if self._unsaved is not None:
            self._unsaved[:0] = entries

    def restore(self, stored: list[Entry]) -> None:
        """The store's entries, with the ones not saved yet on top."""
        self.messages = trim(rebuild([*stored, *(self._unsaved or [])]), self.turns, self.token_budget)

    def _record(self, entry: Entry) -> None:
        if self._unsaved is not None:
            self._unsaved.append(entry)

    def _trim(self) -> None:
        self.messages = trim(self.messages, self.turns, self.token_budget)


def _asks(m: Message, user: Message | None, turn: str) -> bool:
    """``m`` is that user message: the same object, or (read back from the store) the same turn's."""
    return m is user or (bool(turn) and m.role == "user" and m.turn == turn)
