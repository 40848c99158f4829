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
from collections.abc import Sequence
from typing import Any

from linebot.v3.messaging import Message, TextMessage

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import EDIT_FLAG, PAUSED, REVIEW_STATE, Advance, Finish, Flow, Handoff, Invalid, Pause, Stay
from storage.sessions import Session

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
            return [msg.text(
                f"おかえりなさい。「{flow.title}」の「{step.title}」の途中です。\n続きから再開しますか？",
                ["続きから", "最初から"],
            )]
        if cmd is not None:
            return self._command(flow, s, cmd, ctx)
        return self._answer(flow, s, inp, ctx)

    def set_aside(self, s: Session, ctx: Context) -> None:
        """Pause the current flow as キャンセル would (its answers kept, 続きから resumes), silently:
        the user asked for something that must never be taken as an answer (退会, 登録内容)."""
        flow = self.flow_of(s)
        if flow is not None and s.state in flow.steps and not s.data.get(PAUSED):
            s.data[PAUSED] = True
            flow.keep_answers(s, ctx)

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
