"""The decision conversation: reason → confirm → apply, for applications, change requests and roles.

Reviewers and the secretariat most likely use LINE for PC, which shows no
quick replies, so every decision is a Flex button and every decision is
confirmed with another button before it is applied. A return or rejection
first asks for the reason, which reaches the expert verbatim. Scope is
checked again when the decision is applied (``review.may_act``), because a
card can be tapped long after it was sent.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations import present
from conversations.commission import acceptance as commission
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Flow
from conversations.kit.steps import ConfirmStep, ReasonStep
from conversations.registration import changes, submission
from conversations.registration.review import CHANGE_OPS, OPS, Op, find_expert, may_act, refuse
from conversations.roles import ROLE_LABELS, relink_menu, reviewer_ids, revoke, secretariat_ids
from domain import lifecycle
from domain.lifecycle import IllegalTransition
from domain.names import expert_name
from storage.models import Expert, LineUser
from storage.sessions import Session

# --- the decision conversation: reason → confirm → apply ------------------------------------


class Reason(ReasonStep):
    help = "専門家にそのまま伝わります。何をどう直せばよいか、具体的に書いてください（500文字まで）。"

    def prompt(self, s: Session, ctx: Context) -> str:
        op = OPS[s.data["op"]]
        return f"申請No.{s.data['expert_id']} を{op.verb}する理由を入力してください。\n専門家にそのまま伝わります。"


class Confirm(ConfirmStep):
    def describe(self, s: Session, ctx: Context) -> str:
        op = OPS[s.data["op"]]
        if op.key == "revoke":
            return f"利用者No.{s.data['expert_id']}（{s.data.get('label', '')}）の役割を取り消します。"
        if op.key in CHANGE_OPS:
            return f"変更申請No.{s.data['expert_id']} を{op.verb}します。"
        expert = find_expert(s.data["expert_id"])
        name = expert_name(expert) if expert else "—"
        return f"申請No.{s.data['expert_id']}（{name}さん）を{op.verb}します。"

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        return apply(ctx, OPS[s.data["op"]], s.data["expert_id"], s.data.get("reason"))


DECISION = Flow("decision", "審査の判断", [Reason(), Confirm()])


def begin_decision(s: Session, ctx: Context, op: Op, expert_id: int, reason: str | None = None,
                   **extra: str) -> list[Message]:
    """Start (or restart) the decision conversation for one application.

    A reason given up front (``/return 12 理由``) skips its question; 戻る
    never leads back to it (``back=[]``): the decision starts where it starts.
    """
    stale = decided_meanwhile(ctx, op, expert_id)
    if stale is not None:
        return stale
    data: dict[str, object] = {"op": op.key, "expert_id": expert_id, **extra}
    if reason:
        data["reason"] = reason
    state = "reason" if op.needs_reason and not reason else "confirm"
    return ENGINE.enter(DECISION, s, ctx, state=state, data=data, back=[])


def decided_meanwhile(ctx: Context, op: Op, target_id: object) -> list[Message] | None:
    """A decision on something already decided (a card tapped again, or late): where it stands
    now, at once — asking 「よろしいですか？」 first would only refuse after はい."""
    tz = ctx.program.timezone
    if op.key in CHANGE_OPS:
        change = changes.find(target_id)
        if change is None or change.status == "pending":
            return None
        return present.Present(present.change_line(tz, change)).messages()
    if op.key == "revoke":
        return None
    expert = find_expert(target_id)
    if expert is None or lifecycle.allowed(expert, op.trigger):
        return None
    return present.for_staff(tz, expert).messages()


def begin_revoke(s: Session, ctx: Context, user: LineUser) -> list[Message]:
    label = ROLE_LABELS.get(user.role or "", "") + (f"・{user.institution.name}" if user.institution else "")
    return begin_decision(s, ctx, OPS["revoke"], user.id, label=label)


def _apply_revoke(ctx: Context, user_id: object) -> list[Message]:
    if ctx.user.role != "secretariat":
        return refuse(ctx, "revoke", user_id)
    user = LineUser.get_or_none(LineUser.id == int(str(user_id)))
    if user is None or user.role is None:
        return [msg.text("この利用者には取り消す役割がありません。")]
    before = revoke(user, ctx.user_id, ctx.event_id)
    relink_menu(ctx, user.line_user_id)
    ctx.notify(user.line_user_id, [msg.text(f"{ROLE_LABELS.get(before or '', '')}の役割が取り消されました。")], "role_revoked")
    return [msg.text(f"利用者No.{user.id} の役割（{ROLE_LABELS.get(before or '', '')}）を取り消しました。")]


def apply(ctx: Context, op: Op, expert_id: object, reason: str | None) -> list[Message]:
    """Apply a confirmed decision and write the notifications it causes."""
    if op.key == "revoke":
        return _apply_revoke(ctx, expert_id)
    if op.key in CHANGE_OPS:
        return changes.decide(ctx, op, expert_id, reason)
    expert = find_expert(expert_id)
    if expert is None:
        return [msg.text(f"申請No.{expert_id} は見つかりませんでした。")]
    if not may_act(ctx, op, expert):
        return refuse(ctx, op.key, expert.id)
    try:
        lifecycle.change_status(expert, op.trigger, actor=ctx.user_id, reason=reason, event_id=ctx.event_id)
    except IllegalTransition:  # decided by someone else while this one was confirming (audited)
        return present.for_staff(ctx.program.timezone, expert).messages(f"{op.verb}できませんでした。\n")
    notify_decision(ctx, op, expert, reason)
    return [msg.text(f"申請No.{expert.id}（{expert_name(expert)}さん）を{op.verb}しました。")]


def notify_decision(ctx: Context, op: Op, expert: Expert, reason: str | None) -> None:
    """Tell everyone concerned, through the outbox, in the decision's transaction."""
    expert_id = expert.user.line_user_id
    name = expert_name(expert)
    if op.trigger == "institution_approve":
        ctx.notify(expert_id, [msg.text("支援機関の審査が完了しました。現在、事務局で最終確認をしています。結果はこのトークでお知らせします。")],
                   "institution_approved")
        for sec in secretariat_ids():
            ctx.notify(sec, submission.cards_for(ctx, expert, "secretariat"), "pending_secretariat")
    elif op.trigger.endswith("_return"):
        ctx.notify(expert_id, [msg.text(
            f"登録申請が差し戻されました。\n理由：{reason}\n\n「登録」と送ると内容を修正して再送信できます。", ["登録"])],
            "returned")
    elif op.trigger.endswith("_reject"):
        ctx.notify(expert_id, [msg.text(f"誠に残念ながら、今回の登録申請はお受けできませんでした。\n理由：{reason}")], "rejected")
    elif op.trigger == "secretariat_approve":
        ctx.notify(expert_id, [msg.text("専門家登録が承認されました。")] + commission.conditions_messages(ctx), "registered")
    if op.role == "secretariat":
        for reviewer in reviewer_ids(expert.institution_id):  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
            ctx.notify(reviewer, [msg.text(f"申請No.{expert.id}（{name}さん）は事務局で{op.verb}されました。")], "secretariat_decision")
