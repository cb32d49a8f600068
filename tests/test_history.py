"""Tests for ``Session.remember``: history trimmed to ``history_turns`` and to ``history_token_budget``."""

from __future__ import annotations

from avatarchat.pipeline.session import Session

OVERHEAD = Session.MESSAGE_OVERHEAD_TOKENS


def session(turns: int = 0, budget: int = 0) -> Session:
    return Session("s1", queue_size=4, history_turns=turns, history_token_budget=budget)


def tokens(s: Session) -> int:
    return sum(Session.estimate_tokens(m.content) + OVERHEAD for m in s.history)


def test_estimate_tokens() -> None:
    assert Session.estimate_tokens("") == 0
    assert Session.estimate_tokens("abcd" * 10) == 10  # ~4 characters a token for Latin text
    assert Session.estimate_tokens("abcde") == 2  # rounded up
    assert Session.estimate_tokens("안녕하세요") == 5  # one token per Hangul / CJK character
    assert Session.estimate_tokens("你好 hello") == 2 + 2


def test_budget_drops_the_oldest_messages_first() -> None:
    s = session(budget=100)
    for i in range(10):  # each message: 40 characters = 10 tokens + overhead
        s.remember("user", f"question {i:02d} ".ljust(40, "."))
        s.remember("assistant", f"answer {i:02d} ".ljust(40, "."))
    assert tokens(s) <= 100
    assert len(s.history) == 100 // (10 + OVERHEAD) // 2 * 2  # whole turns: 6 messages of 14 tokens
    assert s.history[0].role == "user"
    assert [m.content[:11] for m in s.history[-2:]] == ["question 09", "answer 09 ."]
    # the kept messages are the most recent ones, in order
    numbers = [int(m.content.split()[1]) for m in s.history]
    assert numbers == sorted(numbers) and numbers[-1] == 9


def test_newest_user_message_is_never_dropped() -> None:
    s = session(budget=50)
    s.remember("user", "hi")
    s.remember("assistant", "hello there")
    long_question = "Please tell me everything about lip-sync. " * 20  # ~210 tokens, far over the budget
    s.remember("user", long_question)
    assert [m.content for m in s.history] == [long_question]
    s.remember("assistant", "Sure.")  # the reply to it is kept too
    assert [m.role for m in s.history] == ["user", "assistant"]
    assert s.history[0].content == long_question


def test_history_starts_with_a_user_message_after_trimming() -> None:
    s = session(budget=40)
    s.remember("user", "a" * 40)  # 14 tokens
    s.remember("assistant", "b" * 80)  # 24 tokens
    s.remember("user", "c" * 8)  # 6 tokens: total 44 > 40, so the first user message goes
    # dropping only it would leave the assistant message first; it goes too
    assert [m.content for m in s.history] == ["c" * 8]


def test_cjk_text_counts_per_character() -> None:
    s = session(budget=60)
    s.remember("user", "가" * 30)  # 34 tokens, though only 30 characters
    s.remember("assistant", "네")
    s.remember("user", "나" * 20)  # 24: total 34 + 5 + 24 = 63 > 60
    assert [m.content for m in s.history] == ["나" * 20]


def test_turn_limit_still_applies_under_a_large_budget() -> None:
    s = session(turns=2, budget=3000)
    for i in range(5):
        s.remember("user", f"q{i}")
        s.remember("assistant", f"a{i}")
    assert [m.content for m in s.history] == ["q3", "a3", "q4", "a4"]


def test_zero_budget_means_no_token_limit() -> None:
    s = session(budget=0)
    for _ in range(50):
        s.remember("user", "x" * 400)
        s.remember("assistant", "y" * 400)
    assert len(s.history) == 100


def test_default_budget_matches_settings() -> None:
    from avatarchat.settings import Settings

    assert Session("s2", 4, 20).history_token_budget == Settings(_env_file=None).history_token_budget


def test_entries_from_several_nodes_rebuild_in_the_order_things_were_said() -> None:
    from avatarchat.pipeline.history import answered, asked, forgotten, rebuild

    entries = [asked("t1", "One?"), asked("t2", "Two?"),  # two nodes' messages, the second before the first answer
               answered("t2", "Two.", heard=False), answered("t1", "One, in full.", heard=False),
               answered("t1", "One", heard=True),  # interrupted on another node: what was heard wins...
               answered("t1", "One, again in full.", heard=False),  # ...over a written text saved after it
               asked("t3", "Three?"), forgotten("t3"),  # its reply failed
               answered("gone", "An answer whose question was trimmed away.", heard=False),
               {"turn": 7, "role": "user", "content": "malformed"}, {"role": "user", "content": "no turn"}]
    assert [(m.role, m.content) for m in rebuild(entries)] == [
        ("user", "One?"), ("assistant", "One"), ("user", "Two?"), ("assistant", "Two.")]


def test_a_shared_session_records_each_change_once_and_merges_its_unsaved_ones_on_restore() -> None:
    from avatarchat.pipeline.history import asked

    s = Session("s1", queue_size=4, history_turns=10, shared=True)
    s.remember("user", "Mine?", turn="mine")
    s.voice = "piper:x"
    changes = s.take_changes()
    assert changes == {"history": [asked("mine", "Mine?")], "voice": "piper:x"} and s.take_changes()["history"] == []
    s.remember("user", "Not saved yet?", turn="later")
    s.restore({"voice": "piper:other", "history": [asked("mine", "Mine?"), asked("theirs", "Theirs?")]})
    assert [m.content for m in s.history] == ["Mine?", "Theirs?", "Not saved yet?"]
    assert s.voice == "piper:other"  # another node chose a voice after this one saved its own
    s.voice = "piper:y"
    s.restore({"voice": "piper:other", "history": []})
    assert s.voice == "piper:y"  # chosen here and not saved yet: it stays
