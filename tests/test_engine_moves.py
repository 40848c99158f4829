"""The engine's moves on toy flows: the step order gives ``next``, ``enter`` and
``Handoff`` are the only ways in, interrupts win over the step's parsing, and
input of a kind the step does not accept is answered once, for every step."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Input
from conversations.kit.engine import Engine
from conversations.kit.flow import TEXT, Advance, Finish, Flow, Handoff, Outcome, Pause, Step, in_order
from storage.sessions import Session


class Ask(Step):
    """A text question that records its answer and moves on with ``trigger``."""

    accepts = frozenset({TEXT})

    def __init__(self, name: str, trigger: str = "next", leads_to_next: bool = True) -> None:
        self.name, self.title, self.trigger, self.leads_to_next = name, name.upper(), trigger, leads_to_next

    def ask(self, s: Session, ctx: Any, again: bool = False) -> list[Message]:
        return [msg.text(f"{self.name}?")]

    def answer(self, s: Session, inp: Input, ctx: Any) -> Outcome:
        if inp.text == "done":
            return Finish([msg.text("bye")])
        if inp.text == "over":
            return Handoff("other", "y", {"from": self.name}, [msg.text("handing over")])
        s.data[self.name] = inp.text
        return Advance(trigger=self.trigger)


def ctx() -> Any:
    return SimpleNamespace(program=SimpleNamespace(idle_minutes=60, retry_limit=3), audit=lambda *a, **k: None)


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


def engine() -> Engine:
    main = Flow("main", "メイン", [Ask("a"), Ask("b", trigger="skip"), Ask("c"), Ask("d")],
                [{"trigger": "skip", "source": "b", "dest": "d"}],
                interrupts={"menu": lambda s, inp, c: Pause([msg.text("paused")])})
    other = Flow("other", "ほか", [Ask("x"), Ask("y")])
    return Engine([main, other])


def test_next_follows_the_step_order_unless_a_step_declares_its_own_or_does_not_lead_on():
    steps = [Ask("a"), Ask("b"), Ask("c", leads_to_next=False), Ask("d")]
    branches = [{"trigger": "next", "source": "a", "dest": "c"},
                {"trigger": "next", "source": "b", "dest": "d", "conditions": "guard"}]
    assert in_order(steps, branches) == [{"trigger": "next", "source": "b", "dest": "c"}]
    assert Flow("f", "f", steps, branches).transitions[-1] == {"trigger": "next", "source": "b", "dest": "c"}


def test_enter_places_the_session_and_asks_and_answers_move_along_the_order():
    e, s, c = engine(), Session("u"), ctx()
    assert texts(e.enter("main", s, c, data={"seed": 1})) == ["a?"]
    assert (s.flow, s.state, s.stack, s.data) == ("main", "a", [], {"seed": 1})
    assert texts(e.run(s, Input.from_text("1"), c)) == ["b?"]
    assert texts(e.run(s, Input.from_text("2"), c)) == ["d?"] and s.stack == ["a", "b"]
    e.enter("main", s, c, state="c", back=[])
    assert (s.state, s.stack, s.data) == ("c", [], {})


def test_a_handoff_moves_the_session_to_the_other_flow():
    e, s, c = engine(), Session("u"), ctx()
    e.enter("main", s, c)
    assert texts(e.run(s, Input.from_text("over"), c)) == ["handing over", "y?"]
    assert (s.flow, s.state, s.data, s.stack) == ("other", "y", {"from": "a"}, ["x"])


def test_an_interrupt_wins_over_the_step_and_pause_sets_the_flow_aside():
    e, s, c = engine(), Session("u"), ctx()
    e.enter("main", s, c)
    assert texts(e.run(s, Input.from_text("menu"), c)) == ["paused"]
    assert s.state == "a" and s.data.get("_paused") and "a" not in s.data


def test_input_of_another_kind_is_answered_once_by_the_engine():
    e, s, c = engine(), Session("u"), ctx()
    e.enter("main", s, c)
    answer = texts(e.run(s, Input(kind="location", latitude=35.0, longitude=139.0), c))
    # Counted like any unusable answer (after retry_limit, help / pause are offered).
    assert answer == ["「A」は文字でお答えください。", "a?"] and s.retries == {"a": 1}
