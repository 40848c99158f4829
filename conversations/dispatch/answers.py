"""The expert's answer to a request: 受諾 or 辞退 (with a reason), told to the reviewer who asked.

The request card's buttons (``dsp_accept`` / ``dsp_decline``) may be tapped
long after it came, so each answer checks again that the dispatch is the
expert's and still waiting. 受諾 counts the business's free dispatches once
more (``free_limit``): a request made while another was waiting may now be
over the limit, and is then cancelled instead of accepted.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations import present
from conversations.dispatch.common import describe, find_dispatch
from conversations.dispatch.free_limit import counted_dispatches
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Finish, Flow, Invalid, Outcome, Step
from conversations.kit.steps import reason_from
from domain import clock
from domain.names import expert_name
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH, DISPATCH_COUNTED
from storage import repo
from storage.models import Dispatch
from storage.sessions import Session


def _own_request(ctx: Context, fields: dict[str, str]) -> Dispatch | list[Message]:
    dispatch = find_dispatch(fields.get("id"))
    expert = repo.expert_of(ctx.user)
    if dispatch is None or expert is None or dispatch.expert_id != expert.id:  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        ctx.audit("auth.refused", target=f"dispatch:{fields.get('id')}", reason="not the dispatch's expert")
        return [msg.text("この依頼は見つかりませんでした。")]
    if dispatch.status != "requested":
        return _already(ctx, dispatch)
    return dispatch


def _already(ctx: Context, dispatch: Dispatch) -> list[Message]:
    """受諾する / 辞退する on a request answered, cancelled or moved on meanwhile: where it stands now."""
    fresh = find_dispatch(dispatch.id) or dispatch  # a refused move may have lost to a newer status
    return present.dispatch_for_expert(ctx.program.timezone, fresh).messages()


def accept(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _own_request(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    limit = ctx.program.free_dispatches_per_business
    used = counted_dispatches(ctx, dispatch.business_id, DISPATCH_COUNTED, exclude=dispatch.id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    if used >= limit:
        try:
            DISPATCH.move(dispatch, "cancel_over_limit", actor=ctx.user_id, reason="無料派遣の上限", event_id=ctx.event_id,
                          changes={"reason": "無料派遣の上限"})
        except IllegalTransition:  # answered or cancelled meanwhile (the machine audited it)
            return _already(ctx, dispatch)
        ctx.audit("dispatch.limit_refused", target=f"dispatch:{dispatch.id}", before=str(used), after=str(limit))
        ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
            f"派遣No.{dispatch.id}（{dispatch.business.name}）は、無料派遣の上限（{limit}回）に達したため取り消されました。")],
            "dispatch_limit")
        return [msg.text("この事業者は無料派遣の上限に達したため、依頼は取り消されました。")]
    try:
        DISPATCH.move(dispatch, "accept", actor=ctx.user_id, event_id=ctx.event_id)
    except IllegalTransition:
        return _already(ctx, dispatch)
    ctx.audit("dispatch.accepted", target=f"dispatch:{dispatch.id}", before="requested", after="accepted")
    ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
        f"派遣No.{dispatch.id}（{dispatch.business.name}、{clock.when_text(ctx.program.timezone, dispatch.scheduled_at)}）を"
        f"{expert_name(dispatch.expert)}さんが受諾しました。")], "dispatch_accepted")
    return [msg.text(f"受諾しました。当日は事業所で「チェックイン」をお願いします。\n\n{describe(ctx, dispatch)}")]


def decline(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _own_request(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(DECLINE, s, ctx, state="why", data={"dispatch_id": dispatch.id})


class DeclineReason(Step):
    name = "why"
    title = "辞退の理由"
    help = "依頼した支援機関の担当者に伝わります。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("辞退の理由を入力してください（依頼した担当者に伝わります）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        reason = reason_from(inp, "辞退の理由")
        if isinstance(reason, Invalid):
            return reason
        dispatch = _own_request(ctx, {"id": str(s.data.get("dispatch_id"))})
        if isinstance(dispatch, list):
            return Finish(dispatch)
        try:
            DISPATCH.move(dispatch, "decline", actor=ctx.user_id, reason=reason[:500], event_id=ctx.event_id,
                          changes={"reason": reason[:500]})
        except IllegalTransition:
            return Finish(_already(ctx, dispatch))
        ctx.audit("dispatch.declined", target=f"dispatch:{dispatch.id}", before="requested", after="declined",
                  reason=reason[:500])
        ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
            f"派遣No.{dispatch.id}（{dispatch.business.name}）を{expert_name(dispatch.expert)}さんが辞退しました。\n"
            f"理由：{reason[:500]}\n別の専門家に依頼する場合は「支援依頼」と送ってください。")], "dispatch_declined")
        return Finish([msg.text("辞退を担当者に伝えました。")])


DECLINE = Flow("dispatch_decline", "依頼の辞退", [DeclineReason()])
