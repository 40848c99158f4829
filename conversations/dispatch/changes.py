"""The reviewer's cancel (取消, with a reason) and reschedule (日時変更) of a dispatch before check-in.

Both start from a 依頼一覧 card's buttons (``dsp_cancel`` / ``dsp_move``),
are open to the institution's reviewers and the secretariat, and end in
one confirmation that moves the dispatch and tells the expert. A dispatch
checked in (or cancelled) meanwhile is refused by its status machine.
"""
from __future__ import annotations

from datetime import datetime

from linebot.v3.messaging import Message

from conversations import present
from conversations.dispatch.common import find_dispatch
from conversations.dispatch.schedule import WHEN_HELP, check_when, parse_when, picker
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Advance, Flow, Invalid, Outcome, Step
from conversations.kit.steps import ConfirmStep, ReasonStep
from domain import clock
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH, DISPATCH_BEFORE_CHECK_IN
from storage.models import Dispatch
from storage.sessions import Session


def reviewer_of(ctx: Context, dispatch: Dispatch) -> bool:
    """The dispatch's institution's reviewers, and the secretariat."""
    user = ctx.user
    return user.role == "secretariat" or (user.role == "reviewer" and user.institution_id == dispatch.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def _manageable(ctx: Context, fields: dict[str, str]) -> Dispatch | list[Message]:
    dispatch = find_dispatch(fields.get("id"))
    if dispatch is None:
        return [msg.text("派遣が見つかりませんでした。")]
    if not reviewer_of(ctx, dispatch):
        ctx.audit("auth.refused", target=f"dispatch:{dispatch.id}", reason="not this institution's reviewer")
        return [msg.text("この派遣を操作する権限がありません。")]
    if dispatch.status not in DISPATCH_BEFORE_CHECK_IN:
        return _unchangeable(ctx, dispatch)
    return dispatch


def _unchangeable(ctx: Context, dispatch: Dispatch) -> list[Message]:
    """取消 / 日時変更 on a dispatch checked in, declined or cancelled meanwhile: where it stands now."""
    fresh = find_dispatch(dispatch.id) or dispatch  # a refused move may have lost to a newer status
    return present.dispatch_for_staff(ctx.program.timezone, fresh).messages()


def begin_cancel(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _manageable(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(MANAGE, s, ctx, state="cancel_reason", data={"dispatch_id": dispatch.id, "op": "cancel"}, back=[])


def begin_move(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _manageable(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(MANAGE, s, ctx, state="new_when", data={"dispatch_id": dispatch.id, "op": "move"}, back=[])


class CancelReason(ReasonStep):
    name = "cancel_reason"
    title = "取消の理由"
    help = "専門家に伝わります。"
    what = "取消の理由"
    trigger = "confirm"
    leads_to_next = False  # 取消 and 日時変更 are two entries to one confirmation, not a sequence

    def prompt(self, s: Session, ctx: Context) -> str:
        return f"派遣No.{s.data['dispatch_id']} を取り消す理由を入力してください（専門家に伝わります）。"


class NewWhen(Step):
    name = "new_when"
    title = "新しい日時"
    leads_to_next = False  # moves on with ``confirm``
    help = WHEN_HELP

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(f"派遣No.{s.data['dispatch_id']} の新しい日時を選んでください。", extra=[picker(ctx, "dp=move")])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            chosen = parse_when(inp, ctx)
            check_when(ctx, chosen)
        except ValueError as exc:
            return Invalid(str(exc))
        s.data["when"] = clock.to_utc(chosen).isoformat()
        return Advance(trigger="confirm")


class ManageConfirm(ConfirmStep):
    name = "manage_confirm"
    help = "「はい」で確定し、専門家に伝えます。"

    def describe(self, s: Session, ctx: Context) -> str:
        if s.data["op"] == "cancel":
            return f"派遣No.{s.data['dispatch_id']} を取り消します。"
        return f"派遣No.{s.data['dispatch_id']} の日時を{clock.when_text(ctx.program.timezone, datetime.fromisoformat(s.data['when']))} に変更します。"

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        dispatch = _manageable(ctx, {"id": str(s.data["dispatch_id"])})
        if isinstance(dispatch, list):
            return dispatch
        before = dispatch.status
        old = clock.when_text(ctx.program.timezone, dispatch.scheduled_at)
        try:
            if s.data["op"] == "cancel":
                DISPATCH.move(dispatch, "cancel", actor=ctx.user_id, reason=s.data["reason"], event_id=ctx.event_id,
                              changes={"reason": s.data["reason"]})
            else:
                DISPATCH.move(dispatch, "reschedule", actor=ctx.user_id, event_id=ctx.event_id,
                              changes={"scheduled_at": datetime.fromisoformat(s.data["when"])})
        except IllegalTransition:  # checked in (or cancelled) meanwhile: the machine audited it
            return _unchangeable(ctx, dispatch)
        if s.data["op"] == "cancel":
            note = f"派遣No.{dispatch.id}（{dispatch.business.name}）は取り消されました。\n理由：{s.data['reason']}"
        else:
            note = (f"派遣No.{dispatch.id}（{dispatch.business.name}）の日時が変更されました。\n"
                    f"{old} → {clock.when_text(ctx.program.timezone, dispatch.scheduled_at)}")
        ctx.audit(f"dispatch.{s.data['op']}", target=f"dispatch:{dispatch.id}", before=before, after=dispatch.status,
                  reason=s.data.get("reason"))
        ctx.notify(dispatch.expert.user.line_user_id, [msg.text(note)], f"dispatch_{s.data['op']}")
        return [msg.text("専門家に伝えました。\n" + note)]


MANAGE = Flow(
    "dispatch_manage",
    "派遣の取消・日時変更",
    [CancelReason(), NewWhen(), ManageConfirm()],
    [{"trigger": "confirm", "source": ["cancel_reason", "new_when"], "dest": "manage_confirm"}],
)
