"""Profile entry, the end of the form: the summary with 修正, and 送信.

The summary is a Flex message (LINE for PC shows it) with a 修正 button
per item that jumps to that question and comes straight back; its rows,
the 修正 targets and words all follow the question order (``items.py``).
送信 checks again what may have changed since an answer was given (the
account holder against a fixed フリガナ), then sends the application — or,
after approval, the change request.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations import present
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import Finish, Invalid, Outcome, Step
from conversations.kit.steps import summary_answer
from conversations.registration import changes, items, submission
from conversations.registration.account import holder_is_not_own
from storage import repo
from storage.sessions import Session


class Confirm(Step):
    name = "confirm"
    title = "登録内容の確認"
    help = "内容を確認し、直す項目は「修正」、よろしければ「送信」を押してください。送信すると支援機関の審査に進みます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        expert = repo.ensure_expert(ctx.user)
        rows = [(label, value, f"p=edit&s={step}" if step else None)
                for label, value, step in items.summary_rows(expert.draft or {})]
        changing = expert.status in changes.APPROVED_STATUSES
        intro = [] if again or changing else [msg.text("入力ありがとうございました。内容をご確認ください。")]
        if expert.status == "returned" and expert.status_reason:
            intro.append(msg.text(f"差し戻しの理由：{expert.status_reason}"))
        title = "登録内容の変更" if changing else "登録内容の確認"
        return intro + [flex.summary_bubble(title, rows, ("送信", "p=submit"),
                                                  images=submission.photo_images(ctx, expert.draft or {})),
                        msg.text("よろしければ「送信」、直す場合は各項目の「修正」を押してください。", ["送信"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return summary_answer(s, inp, editable=items.EDITABLE, label_to_step=items.LABEL_TO_STEP,
                              on_submit=lambda: self._submit(ctx)) or Invalid(
            "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 電話番号」と入力しても直せます）。")

    def _submit(self, ctx: Context) -> Outcome:
        expert = repo.ensure_expert(ctx.user)
        missing = [label for label, value, _ in items.summary_rows(expert.draft or {}) if value in ("—", "")
                   and label not in items.BLANK_OK]
        if missing:
            return Invalid("まだ入力されていない項目があります：" + "、".join(missing))
        not_own = holder_is_not_own(ctx, expert.draft or {})
        if not_own:
            return Invalid(not_own)
        if expert.status in changes.APPROVED_STATUSES:
            pending = changes.pending_change(expert)
            if pending is not None:  # 送信 tapped again on the summary it was sent from
                return Finish(present.Present(present.change_line(ctx.program.timezone, pending),
                                              "審査結果をお待ちください。", ["状況"]).messages())
            result = changes.submit_change(ctx, expert)
            return Invalid(result) if isinstance(result, str) else Finish(result)
        if expert.status not in ("draft", "returned"):
            return Finish(present.for_the_expert(ctx.program.timezone, expert).messages())
        return Finish(submission.submit(ctx, expert))
