"""The conversation engine: explicit state machines, one per flow.

Each flow's ``transitions.Machine`` is built **once at import** with
``model=None`` (building one per request costs 240–1,100 µs and up to
150 KiB). Per event the machine's ``Event`` fires on the session directly
(see ``Flow.fire``), so no model is ever attached to the shared machine.

The engine owns what every flow shares, so flows only describe their steps:
global commands (キャンセル, 戻る, ヘルプ, 最初から, 状況, 続きから) win over
the step's parsing; ``stack`` remembers where 戻る goes; ``retries`` caps
re-asks (then help / skip / pause are offered instead of a loop); an idle
session is greeted back; a state that no longer exists after a deploy is
mapped back to the draft, never a crash.

The engine is also the only thing that moves a session: along a flow's
declared transitions, or into a flow with ``Engine.enter`` (a menu word, a
card's button) or a step's ``Handoff`` (check-out → the report). Flows
never set ``s.state`` themselves.
"""
from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from linebot.v3.messaging import Message, TextMessage
from transitions import Machine, MachineError

from conversations.kit import messages as msg
from program import Program
from storage import repo
from storage.models import LineUser, utcnow
from storage.sessions import Session

# --- what comes in -----------------------------------------------------------

COMMAND_WORDS: dict[str, tuple[str, ...]] = {
    "cancel": ("キャンセル", "中止", "やめる", "一時停止"),
    "back": ("戻る", "もどる", "前に戻る"),
    "help": ("ヘルプ", "help", "?", "使い方"),
    "restart": ("最初から", "はじめから", "やり直し"),
    "status": ("状況", "ステータス", "じょうきょう"),
    "resume": ("続きから", "つづきから", "再開"),
    "skip": ("スキップ", "とばす"),
}
_WORD_TO_COMMAND = {
    unicodedata.normalize("NFKC", w).lower(): cmd for cmd, words in COMMAND_WORDS.items() for w in words
}


def clean_text(raw: str) -> str:
    """NFKC, trimmed, inner whitespace collapsed: how typed words are compared."""
    return " ".join(unicodedata.normalize("NFKC", raw or "").split())


@dataclass
class Input:
    """One user event, already stripped of LINE's transport details."""

    kind: str  # text | postback | location | image | follow
    text: str = ""  # cleaned (NFKC, trimmed)
    raw_text: str = ""
    data: str = ""  # postback data
    params: dict[str, Any] = field(default_factory=dict)  # datetimepicker result
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    message_id: str | None = None
    # Image bytes, downloaded by the webhook the moment the event arrives
    # (LINE keeps content only for a while); None if the download failed.
    content: bytes | None = None
    image_set: dict[str, Any] | None = None  # {"id", "index", "total"} when sent together
    timestamp_ms: int = 0
    event_id: str | None = None

    @classmethod
    def from_text(cls, raw: str, **kw: Any) -> "Input":
        return cls(kind="text", text=clean_text(raw), raw_text=raw, **kw)

    def command(self) -> str | None:
        """A global command, typed or tapped (postback ``cmd=<name>``)."""
        if self.kind == "text":
            word = self.text.rstrip("。.!！").lower()
            return _WORD_TO_COMMAND.get(word)
        if self.kind == "postback" and self.data.startswith("cmd="):
            name = self.data[4:]
            return name if name in COMMAND_WORDS else None
        return None


@dataclass
class Context:
    """What a step may use besides the session: the user, the rules, time, side effects."""

    user: LineUser
    program: Program
    now: datetime
    event_id: str | None = None
    # When the user sent it: LINE's event timestamp in business time (None
    # when the event has none). A message sent at 23:59 and processed after
    # midnight (a retry, a deferral) still belongs to the day it was sent.
    sent_at: datetime | None = None
    outbox_ids: list[int] = field(default_factory=list)
    # storage.crypto.FieldCrypto: encrypts bank numbers and holder names
    # before they reach the draft; set by the webhook from the runtime.
    crypto: Any = None
    # storage.files.EncryptedFileStore for photos; set by the webhook.
    files: Any = None
    # file id → short-lived signed URL (handlers.files); set by the webhook.
    link_for: Callable[[str], str] | None = None
    # Background jobs to schedule / cancel once the step's transaction has
    # committed (the webhook does it: flows never touch the queue).
    jobs: list[tuple[timedelta, str, tuple[Any, ...], str]] = field(default_factory=list)
    cancelled_jobs: list[str] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return self.user.line_user_id

    @property
    def sent_day(self) -> date:
        """The business day the user acted on (see ``sent_at``)."""
        return (self.sent_at or self.now).date()

    def notify(self, to: str, messages: Sequence[Message], reason: str) -> None:
        """Push to someone else, through the outbox (delivered after commit)."""
        row = repo.queue_push(to, [m.to_dict() for m in messages], reason)
        self.outbox_ids.append(row.id)

    def audit(self, action: str, **kw: Any) -> None:
        repo.audit(self.user_id, action, event_id=self.event_id, **kw)

    def schedule(self, delay: timedelta, func: str, *args: Any, job_id: str) -> None:
        """Run ``func`` (dotted path) in the worker after ``delay``, if the step commits."""
        self.jobs.append((delay, func, args, job_id))

    def unschedule(self, job_id: str) -> None:
        self.cancelled_jobs.append(job_id)


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


class Flow:
    """A named conversation: steps in the order they are asked, and its machine built once.

    ``branches`` are the transitions the order does not say (skips, detours,
    guards, 修正 from the summary); the plain ``next`` moves are derived from
    the order (``in_order``).
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
        self.transitions = [*branches, *in_order(steps, branches)]
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


# --- the engine ---------------------------------------------------------------------

def _current(s: Session) -> str:
    """The session's state where the engine has already placed it or checked it is in the flow."""
    assert s.state is not None, "session without a state"
    return s.state


HELP_FOOTER = "困ったときは「戻る」「キャンセル」（一時停止）「最初から」「状況」と送ってください。"


class Engine:
    """Runs one input through the user's current flow."""

    def __init__(self, flows: Sequence[Flow] = ()):
        self.flows: dict[str, Flow] = {}
        self.register(flows)

    def register(self, flows: Sequence[Flow]) -> None:
        """Make flows known (by name) to ``run`` and to hand-offs by name."""
        self.flows.update((f.name, f) for f in flows)

    def flow_of(self, s: Session) -> Flow | None:
        return self.flows.get(s.flow or "")

    def enter(self, flow: Flow | str, s: Session, ctx: Context, state: str | None = None,
              data: dict[str, Any] | None = None, back: Sequence[str] | None = None) -> list[Message]:
        """The one way into a flow: at ``state``, else where the user left it, else its first step.

        The session is reset first (a flow never inherits another's answers);
        ``data`` seeds the new flow's answers. 戻る goes through ``back``, by
        default every step before ``state``, so earlier questions stay
        reachable even after a lost session.
        """
        if isinstance(flow, str):
            flow = self.flows[flow]
        flow.on_begin(ctx)
        resumed = None if state else flow.resume_state(ctx)
        self._place(flow, s, state or resumed or flow.initial, data, back)
        if resumed:
            s.data.update(flow.resume_data(ctx))
            s.data.update(data or {})
            s.data.pop(PAUSED, None)  # entering the flow is what 続きから would have done
        return flow.steps[_current(s)].ask(s, ctx)

    def recover(self, s: Session, ctx: Context) -> None:
        """A lost or stale session: put it back where SQL says the user is, asking nothing."""
        for flow in self.flows.values():
            state = flow.resume_state(ctx)
            if state is not None:
                self._place(flow, s, state, flow.resume_data(ctx))
                return
        s.reset()

    @staticmethod
    def _place(flow: Flow, s: Session, state: str, data: dict[str, Any] | None = None,
               back: Sequence[str] | None = None) -> None:
        """The only place outside a transition where a session changes flow and state."""
        s.reset()
        s.flow, s.state = flow.name, state
        s.data.update(data or {})
        s.stack = list(back) if back is not None else flow.order[: flow.order.index(state)]

    def hand_over(self, s: Session, ctx: Context, handoff: Handoff) -> list[Message]:
        """Apply a ``Handoff``: its messages, then the new flow's first question."""
        return fit_five(list(handoff.messages) + self.enter(
            handoff.flow, s, ctx, handoff.state, handoff.data, handoff.back))

    def run(self, s: Session, inp: Input, ctx: Context) -> list[Message] | None:
        """Handle ``inp`` for a session in a flow; ``None`` means "not for a flow"."""
        flow = self.flow_of(s)
        if flow is None:
            s.reset()
            return None
        if s.state not in flow.steps:
            return self._unknown_state(flow, s, ctx)
        cmd = inp.command()
        if s.data.get(PAUSED):
            return self._paused(flow, s, inp, cmd, ctx)
        if s.data.get("_confirm") == "restart":
            return self._confirm_restart(flow, s, inp, ctx)
        if cmd is None and inp.kind == "text" and inp.text in flow.start_words:
            # The flow's own name typed in the middle of it (after a lost
            # session, the user does not know they are still in it).
            return [msg.text(f"「{flow.title}」の途中です。続きから入力してください"
                             "（やり直す場合は「最初から」）。")] + flow.steps[s.state].ask(s, ctx, again=True)
        # After a long pause a typed message may be meant for something else,
        # so greet first; a location, photo or button tap clearly continues.
        # Wall-clock on both sides: the session stamps ``updated_at`` with time.time().
        if (cmd is None and inp.kind == "text"
                and time.time() - s.updated_at > ctx.program.idle_minutes * 60):
            step = flow.steps[s.state]
            s.data["_greeted"] = True
            return [msg.text(
                f"おかえりなさい。「{flow.title}」の「{step.title}」の途中です。\n続きから再開しますか？",
                ["続きから", "最初から"],
            )]
        if cmd is not None:
            return self._command(flow, s, cmd, ctx)
        return self._answer(flow, s, inp, ctx)

    # -- global commands ------------------------------------------------------

    def _command(self, flow: Flow, s: Session, cmd: str, ctx: Context) -> list[Message]:
        step = flow.steps[_current(s)]
        if cmd == "cancel":
            s.data[PAUSED] = True
            flow.keep_answers(s, ctx)
            return [msg.text(
                "入力を一時停止しました。ここまでの内容は保存されています。\n「続きから」と送ると再開できます。",
                ["続きから"],
            )]
        if cmd == "back":
            if not s.stack:
                return [msg.text("これより前の質問はありません。")] + step.ask(s, ctx, again=True)
            s.state = s.stack.pop()
            s.retries.pop(s.state, None)
            return [msg.text("一つ前の質問に戻ります。")] + flow.steps[s.state].ask(s, ctx, again=True)
        if cmd == "help":
            return [msg.text(f"【{step.title}】\n{step.help}\n\n{HELP_FOOTER}")] + step.ask(s, ctx, again=True)
        if cmd == "restart":
            s.data["_confirm"] = "restart"
            return [msg.text(
                f"「{flow.title}」の入力内容をすべて消して、最初からやり直しますか？",
                ["はい", "いいえ"],
            )]
        if cmd == "status":
            return [msg.text(self.status_line(flow, s))] + step.ask(s, ctx, again=True)
        if cmd == "skip" and step.optional:
            return self._advance(flow, s, Advance(), ctx)
        # resume (or skip where not allowed): just ask again.
        prefix = [msg.text("この項目は省略できません。")] if cmd == "skip" else []
        return prefix + step.ask(s, ctx, again=True)

    def status_line(self, flow: Flow, s: Session) -> str:
        n, total = flow.position(_current(s))
        step = flow.steps[_current(s)]
        line = f"現在「{flow.title}」の「{step.title}」を入力中です（{n}/{total}）。"
        if n < total:
            line += f"\nこのあとは「{flow.steps[flow.order[n]].title}」です。"
        return line

    def _paused(self, flow: Flow, s: Session, inp: Input, cmd: str | None, ctx: Context) -> list[Message] | None:
        if cmd == "resume" or (inp.kind == "text" and inp.text in flow.start_words):
            s.data.pop(PAUSED, None)
            flow.keep_answers(s, ctx)
            return [msg.text("再開します。")] + flow.steps[_current(s)].ask(s, ctx, again=True)
        if cmd == "restart":
            s.data.pop(PAUSED, None)
            return self._command(flow, s, cmd, ctx)
        if cmd == "status":
            return [msg.text(self.status_line(flow, s) + "\n（一時停止中です。「続きから」で再開できます）", ["続きから"])]
        return None  # at rest: the router answers

    def _confirm_restart(self, flow: Flow, s: Session, inp: Input, ctx: Context) -> list[Message]:
        s.data.pop("_confirm", None)
        if inp.text in ("はい", "1", "yes"):
            flow.on_restart(ctx)
            flow.forget_answers(ctx)
            ctx.audit("flow.restart", target=flow.name)
            s.reset()
            s.flow = flow.name
            s.state = flow.initial
            return [msg.text("入力内容を消しました。最初から始めます。")] + flow.steps[s.state].ask(s, ctx)
        return [msg.text("やり直しを取りやめました。続きから入力してください。")] + flow.steps[_current(s)].ask(s, ctx, again=True)

    # -- the step's own answer ------------------------------------------------------

    def _answer(self, flow: Flow, s: Session, inp: Input, ctx: Context) -> list[Message]:
        step = flow.steps[_current(s)]
        s.data.pop("_greeted", None)
        interrupt = flow.interrupts.get(inp.text) if inp.kind == "text" else None
        if interrupt is not None:
            outcome = interrupt(s, inp, ctx)
        elif step.accepts and inp.kind not in step.accepts:
            outcome = Invalid(step.wrong_kind())  # counted like any unusable answer
        else:
            outcome = step.answer(s, inp, ctx)
        if isinstance(outcome, Invalid):
            tries = s.retries.get(_current(s), 0) + 1
            s.retries[_current(s)] = tries
            if tries >= ctx.program.retry_limit:
                offers = ["ヘルプ"] + (["スキップ"] if step.optional else []) + ["キャンセル"]
                return [msg.text(
                    f"{outcome.message}\n\n入力がうまくいかないようです。説明を見る（ヘルプ）か、"
                    + ("この項目をとばす（スキップ）か、" if step.optional else "")
                    + "一時停止（キャンセル）できます。もう一度入力していただいても構いません。",
                    offers,
                )]
            return [msg.text(outcome.message)] + step.ask(s, ctx, again=True)
        if isinstance(outcome, Finish):
            flow.forget_answers(ctx)
            s.reset()
            return fit_five(outcome.messages)
        if isinstance(outcome, Handoff):
            flow.forget_answers(ctx)
            return self.hand_over(s, ctx, outcome)
        if isinstance(outcome, Pause):
            s.retries.pop(_current(s), None)
            s.data[PAUSED] = True
            flow.keep_answers(s, ctx)
            return fit_five(outcome.messages)
        if isinstance(outcome, Stay):
            s.retries.pop(_current(s), None)
            flow.keep_answers(s, ctx)
            return fit_five(list(outcome.messages) + step.ask(s, ctx, again=True))
        return self._advance(flow, s, outcome, ctx)

    def _advance(self, flow: Flow, s: Session, outcome: Advance, ctx: Context) -> list[Message]:
        came_from = _current(s)
        s.retries.pop(came_from, None)
        trigger = outcome.trigger
        if (trigger == "next" and s.data.get(EDIT_FLAG) and flow.steps[came_from].group_end
                and REVIEW_STATE in flow.steps):
            # A fix made from the summary goes straight back to the summary.
            s.data.pop(EDIT_FLAG, None)
            trigger = "review"
        flow.fire(s, trigger, ctx)
        if s.state != came_from:
            s.stack.append(came_from)
        flow.keep_answers(s, ctx)
        return fit_five(list(outcome.messages) + flow.steps[_current(s)].ask(s, ctx))

    def _unknown_state(self, flow: Flow, s: Session, ctx: Context) -> list[Message]:
        """A deploy removed the saved state: go back to the first unanswered step."""
        old = s.state
        state = flow.resume_state(ctx) or flow.initial
        s.state, s.stack, s.retries = state, [], {}
        ctx.audit("session.state_mapped", target=flow.name, before=old, after=state)
        return [msg.text("システムの更新があったため、入力途中の項目から再開します。入力済みの内容は保存されています。")] + flow.steps[state].ask(s, ctx)


def fit_five(messages: list[Message]) -> list[Message]:
    """LINE accepts at most 5 messages per reply: merge leading plain texts."""
    out = list(messages)
    while len(out) > 5:
        first, second = out[0], out[1]
        if isinstance(first, TextMessage) and isinstance(second, TextMessage) and first.quick_reply is None:
            out[:2] = [TextMessage(text=msg.clip(first.text + "\n\n" + second.text), quickReply=second.quick_reply)]
        else:
            out = out[:4] + [out[-1]]
    return out


# The one engine: handlers.router registers every flow on it; flows reach it
# only for an entry from outside a step (a menu word at rest, a card's button).
ENGINE = Engine()


def choose(inp: Input, options: Sequence[str]) -> str | None:
    """A typed or tapped choice: the word itself or its number (1-based)."""
    if inp.kind != "text":
        return None
    word = inp.text.rstrip("。.!！")
    if word in options:
        return word
    if word.isdigit() and 1 <= int(word) <= len(options):
        return options[int(word) - 1]
    return None


YES, NO = "c=yes", "c=no"  # the postback data of every confirmation card's buttons


def confirmation(inp: Input, yes: Sequence[str] = (), no: Sequence[str] = ()) -> str | None:
    """A confirmation card's answer: its button (postback ``c=yes`` / ``c=no``) or the
    typed words (はい/いいえ, 1/2, and the card's own button labels ``yes`` / ``no``)."""
    if inp.kind == "postback":
        return inp.data if inp.data in (YES, NO) else None
    if inp.kind != "text":
        return None
    word = inp.text.rstrip("。.!！")
    if word in ("はい", "1", *yes):
        return YES
    if word in ("いいえ", "2", *no):
        return NO
    return None


def summary_answer(s: Session, inp: Input, *, editable: Sequence[str], label_to_step: dict[str, str],
                   on_submit: Callable[[], Outcome], submit_words: Sequence[str] = ("送信",)) -> Outcome | None:
    """The answer to a summary (a Flex card of every item with 修正, and 送信).

    修正 of an item — its button (``p=edit&s=<step>``) or typed 「修正 電話番号」
    — jumps to that step, which comes back here when answered; 送信 — the
    button (``p=submit``) or a typed ``submit_words`` — calls ``on_submit``.
    Anything else is ``None``: the caller says what it expected.
    """
    if inp.kind == "postback":
        fields = {k: v[0] for k, v in parse_qs(inp.data).items()}
        if fields.get("p") == "edit" and fields.get("s") in editable:
            s.data[EDIT_FLAG] = True
            return Advance(trigger=f"edit_{fields['s']}")
        if fields.get("p") == "submit":
            return on_submit()
    if inp.kind == "text":
        if inp.text in submit_words:
            return on_submit()
        target = label_to_step.get(inp.text.removeprefix("修正").strip(" 　:："))
        if inp.text.startswith("修正") and target:
            s.data[EDIT_FLAG] = True
            return Advance(trigger=f"edit_{target}")
    return None


class ConfirmStep(Step):
    """A decision's last question: what is about to happen, its reason if one
    was given, 「よろしいですか？」 and はい / いいえ (tapped or typed).

    Subclasses say what (``describe``) and do it (``confirmed``); いいえ drops
    the decision, anything else asks again. One class, so every decision of
    every flow confirms, cancels and refuses in the same words.
    """

    name = "confirm"
    title = "確認"
    help = "「はい」で確定、「いいえ」で取りやめます。"
    accepts, wrong_kind_text = frozenset({TEXT, POSTBACK}), "「はい」または「いいえ」でお答えください。"

    def describe(self, s: Session, ctx: Context) -> str:
        raise NotImplementedError

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        raise NotImplementedError

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        from conversations.kit import (
            flex,  # flex builds on messages only; imported here to keep engine's imports minimal
        )

        text = self.describe(s, ctx)
        if s.data.get("reason"):
            text += f"\n理由：{s.data['reason']}"
        return [flex.confirm_card(text + "\nよろしいですか？", ("はい", YES), ("いいえ", NO))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        answer = confirmation(inp)
        if answer == NO:
            return Finish([msg.text("取りやめました。")])
        if answer != YES:
            return Invalid("「はい」または「いいえ」でお答えください。")
        return Finish(self.confirmed(s, ctx))


MAX_REASON = 500


def reason_from(inp: Input, what: str = "理由", limit: int = MAX_REASON) -> str | Invalid:
    """A typed reason (return, rejection, decline, cancel…): non-empty, at most ``limit``
    characters; otherwise the Invalid that explains it."""
    reason = inp.raw_text.strip() if inp.kind == "text" else ""
    if not reason:
        return Invalid(f"{what}を文字で入力してください。")
    if len(reason) > limit:
        return Invalid(f"{what}は{limit}文字以内で入力してください（現在{len(reason)}文字）。")
    return reason


class ReasonStep(Step):
    """Ask for a reason that reaches someone verbatim, keep it in ``s.data["reason"]``, move on.

    Subclasses give the question (``prompt``) and, where it differs, the
    name, title, the word used in messages (``what``) and the trigger.
    """

    name = "reason"
    title = "理由の入力"
    help = "相手にそのまま伝わります。何をどう直せばよいか、具体的に書いてください（500文字まで）。"
    what = "理由"
    trigger = "next"
    accepts = frozenset({TEXT})

    def wrong_kind(self) -> str:
        return f"{self.what}を文字で入力してください。"

    def prompt(self, s: Session, ctx: Context) -> str:
        raise NotImplementedError

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(self.prompt(s, ctx))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        reason = reason_from(inp, self.what)
        if isinstance(reason, Invalid):
            return reason
        s.data["reason"] = reason
        return Advance(trigger=self.trigger)
