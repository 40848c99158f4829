"""Steps and answer parsers every flow shares: choices, confirmations, summaries, reasons.

One ``ConfirmStep`` and one ``ReasonStep`` so that every decision of every
flow asks, confirms, cancels and refuses in the same words.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import parse_qs

from linebot.v3.messaging import Message

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import EDIT_FLAG, POSTBACK, TEXT, Advance, Finish, Invalid, Outcome, Step
from storage.sessions import Session


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
