"""A flow: its steps in the order they are asked, what a step answers, and its machine.

A step answers with an outcome (``Advance``, ``Invalid``, ``Stay``,
``Finish``, ``Pause``, ``Handoff``); the engine (``conversations.kit.engine``)
acts on it. The plain ``next`` moves are derived from the step order
(``in_order``), so the order is written once; a flow declares only its
branches. The machine is built once at import (see the engine's docstring).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from linebot.v3.messaging import Message
from transitions import Machine, MachineError

from conversations.kit.context import Context, Input, clean_text
from conversations.kit.places import Geocoder
from storage import repo
from storage.models import utcnow
from storage.sessions import Session

# --- what a step answers -------------------------------------------------------------


@dataclass
class Invalid:
    """The answer could not be used: say why, then ask again."""

    message: str


@dataclass
class Advance:
    """The answer was saved: move on with ``trigger``."""

    messages: list[Message] = field(default_factory=list)
    trigger: str = "next"


@dataclass
class Stay:
    """The answer was taken but the question is not done (e.g. a multi-select toggle)."""

    messages: list[Message] = field(default_factory=list)


@dataclass
class Finish:
    """The flow is over (done or declined); the user is at rest."""

    messages: list[Message] = field(default_factory=list)


@dataclass
class Pause:
    """Set this flow aside as キャンセル would (the answers are kept; 続きから resumes) and say ``messages``."""

    messages: list[Message] = field(default_factory=list)


@dataclass
class Handoff:
    """This flow is over; ``flow`` takes the session (e.g. check-out → the report).

    The engine enters ``flow`` at ``state`` with ``data`` (see
    ``Engine.enter``) and sends ``messages`` before its first question, so a
    flow never sets ``s.state`` itself. ``back`` overrides where 戻る goes.
    """

    flow: "Flow | str"
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    back: list[str] | None = None


Outcome = Invalid | Advance | Stay | Finish | Pause | Handoff
Interrupt = Callable[[Session, "Input", "Context"], "Outcome"]

EDIT_FLAG = "_edit"  # set when the user jumped from the summary to fix one item
PAUSED = "_paused"  # キャンセル: the flow waits, at rest, for 続きから
KEPT_ANSWERS_FOR = timedelta(days=7)  # a flow's kept answers older than this are not resumed
REVIEW_STATE = "confirm"  # the summary step a flow returns to after such a fix


TEXT, LOCATION, IMAGE, POSTBACK = "text", "location", "image", "postback"
KIND_LABELS = {POSTBACK: "ボタン", TEXT: "文字", LOCATION: "位置情報", IMAGE: "写真"}


class Step:
    """One question. Subclasses define ``ask`` and ``answer``; prompts live beside them."""

    name: str = ""
    title: str = ""
    help: str = ""
    optional: bool = False
    # False on the first parts of a multi-question item (bank: bank → branch
    # → …): after a fix from the summary, only the last part returns there.
    group_end: bool = True
    # The kinds of input (text / location / image / postback) this question
    # can use. The engine answers any other kind itself, before ``answer``:
    # ``wrong_kind()`` and the question again. Empty: ``answer`` sorts it out.
    accepts: frozenset[str] = frozenset()
    wrong_kind_text: str = ""  # a step's own wording for that answer
    # False when the step never moves on with a plain ``next`` to the step
    # listed after it (it branches with its own triggers, or finishes).
    leads_to_next: bool = True

    def wrong_kind(self) -> str:
        """What to say to input of a kind this step does not accept."""
        if self.wrong_kind_text:
            return self.wrong_kind_text
        ways = "・".join(KIND_LABELS[k] for k in KIND_LABELS if k in self.accepts)
        return f"「{self.title}」は{ways}でお答えください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        raise NotImplementedError

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        raise NotImplementedError

    def prefetch(self, s: Session, inp: Input, geocoder: Geocoder) -> None:
        """Slow lookups ``answer`` will need, made before the event's transaction opens (the
        webhook calls this with a memoizing geocoder that ``answer`` then gets): with SQLite a
        transaction holds the write lock, and a slow address service must not hold every user."""


def _sources(transition: dict[str, Any]) -> list[str]:
    source = transition["source"]
    return [source] if isinstance(source, str) else list(source)


def in_order(steps: Sequence[Step], branches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plain ``next`` moves the step order already says: each step to the one listed after it.

    Skipped for a step that declares an unconditional ``next`` of its own (it
    skips ahead) or does not lead on (``Step.leads_to_next``). A guarded
    ``next`` stays first: this one is its fallback, added after every branch.
    """
    declared = {src for t in branches if t["trigger"] == "next" and not t.get("conditions") and not t.get("unless")
                for src in _sources(t)}
    return [{"trigger": "next", "source": step.name, "dest": following.name}
            for step, following in zip(steps, steps[1:]) if step.leads_to_next and step.name not in declared]


def back_to_review(steps: Sequence[Step], branches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``review``: from any step back to the summary, in a flow whose summary has 修正
    (``edit_<step>`` moves): a fix made from there goes straight back (the engine
    fires it, see ``EDIT_FLAG``). A yes/no ``confirm`` step without 修正 gets none."""
    has_summary = any(step.name == REVIEW_STATE for step in steps)
    if not has_summary or not any(str(b.get("trigger", "")).startswith("edit_") for b in branches):
        return []
    return [{"trigger": "review", "source": "*", "dest": REVIEW_STATE}]


class Flow:
    """A named conversation: steps in the order they are asked, and its machine built once.

    ``branches`` are the transitions the order does not say (skips, detours,
    guards, 修正 from the summary); the plain ``next`` moves are derived from
    the order (``in_order``), and a flow with a summary step (``REVIEW_STATE``)
    gets ``review`` from any step back to it (``back_to_review``).
    """

    def __init__(
        self,
        name: str,
        title: str,
        steps: Sequence[Step],
        branches: Sequence[dict[str, Any]] = (),
        start_words: Sequence[str] = (),
        keeps_answers: bool = False,
        interrupts: dict[str, Interrupt] | None = None,
    ) -> None:
        self.name = name
        # Typed words that mean "something else" in any step of this flow (the
        # rich menu is always on screen): checked before the step's own parsing.
        self.interrupts = {clean_text(w): h for w, h in (interrupts or {}).items()}
        # Answers with no record of their own yet (a 支援依頼 being typed) are
        # kept in SQL after every step (FlowDraft): a lost session loses nothing.
        self.keeps_answers = keeps_answers
        self.title = title
        self.steps: dict[str, Step] = {s.name: s for s in steps}
        self.order = [s.name for s in steps]
        self.initial = self.order[0]
        self.start_words = tuple(clean_text(w) for w in start_words)
        self.transitions = [*branches, *back_to_review(steps, branches), *in_order(steps, branches)]
        self.machine = Machine(
            model=None,
            states=self.order,
            transitions=self.transitions,
            initial=self.initial,
            auto_transitions=False,
        )

    # Hooks a flow overrides.
    def resume_state(self, ctx: Context) -> str | None:
        """Where the user is, recomputed from SQL when the session is lost."""
        draft = self._kept(ctx)
        return draft.state if draft is not None and draft.state in self.steps else None

    def resume_data(self, ctx: Context) -> dict[str, Any]:
        """The answers to restore with ``resume_state`` (flows whose answers live elsewhere: none)."""
        draft = self._kept(ctx)
        return dict(draft.data or {}) if draft is not None else {}

    def _kept(self, ctx: Context) -> Any:
        if not self.keeps_answers:
            return None
        return repo.flow_draft(ctx.user, self.name, newer_than=utcnow() - KEPT_ANSWERS_FOR)

    def keep_answers(self, s: Session, ctx: Context) -> None:
        if self.keeps_answers:
            # Answers, and whether the flow is paused: a paused flow recovered
            # from SQL must not take the user's next, unrelated words as an answer.
            repo.save_flow_draft(ctx.user, self.name, s.state or self.initial,
                                 {k: v for k, v in s.data.items() if not k.startswith("_") or k == PAUSED})

    def forget_answers(self, ctx: Context) -> None:
        if self.keeps_answers:
            repo.delete_flow_draft(ctx.user, self.name)

    def on_begin(self, ctx: Context) -> None:
        """Prepare records when the flow starts (e.g. the expert's draft row)."""

    def on_restart(self, ctx: Context) -> None:
        """Clear this flow's draft after the user confirmed 最初から."""

    def fire(self, s: Session, trigger: str, ctx: Context) -> None:
        """Run one transition of the shared machine on this session.

        The machine's own ``Event`` runs it (conditions, then the state
        change on ``s.state``) without ``add_model``: attaching a session
        decorates it with a method per state and trigger (~60 here, 0.6 ms
        per event measured), and a model left attached would leak. Nothing
        is ever registered, so nothing can leak and threads cannot collide.
        """
        event = self.machine.events.get(trigger)
        if event is None:
            raise MachineError(f"{self.name}: no trigger {trigger!r}")
        if not event.trigger(s, ctx):
            raise MachineError(f"{self.name}: {trigger!r} not possible from {s.state!r}")

    def position(self, state: str) -> tuple[int, int]:
        return self.order.index(state) + 1, len(self.order)
