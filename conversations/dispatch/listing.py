"""Dispatches in lists: a reviewer's 依頼一覧 (cards with 取消 / 日時変更) and the secretariat's /dispatches.

The secretariat's list also shows the latest requests refused by the
free-dispatch limit, which leave no dispatch behind, only an audit entry.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations.dispatch.common import describe
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.registration import review
from domain import clock
from domain.names import expert_name
from domain.statuses import DISPATCH_BEFORE_CHECK_IN, DISPATCH_LABELS
from storage.models import AuditLog, Dispatch


def upcoming_cards(ctx: Context) -> list[Message]:
    """依頼一覧: the institution's dispatches before check-in, with 取消 / 日時変更 buttons."""
    query = (Dispatch.select().where((Dispatch.institution == ctx.user.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                                     & Dispatch.status.in_(DISPATCH_BEFORE_CHECK_IN))
             .order_by(Dispatch.scheduled_at).limit(4))
    items = list(query)
    if not items:
        return [msg.text("チェックイン前の派遣はありません。新しく依頼する場合は「支援依頼」と送ってください。", ["支援依頼"])]
    cards: list[Message] = [msg.text(f"チェックイン前の派遣（{len(items)}件まで表示）")]
    for d in items:
        cards.append(flex.choices_card(
            f"派遣No.{d.id}（{DISPATCH_LABELS[d.status]}）", describe(ctx, d),
            [("取消", review.action_data("dsp_cancel", id=d.id)), ("日時変更", review.action_data("dsp_move", id=d.id))]))
    return cards


def listing(ctx: Context, status: str | None) -> str:
    """``/dispatches [status]`` for the secretariat, plus recent limit refusals."""
    query = Dispatch.select().order_by(Dispatch.scheduled_at.desc()).limit(20)
    if status:
        query = query.where(Dispatch.status == status)
    lines = [f"No.{d.id} {clock.when_text(ctx.program.timezone, d.scheduled_at)} {d.business.name} / {expert_name(d.expert)}"
             f"（{DISPATCH_LABELS.get(d.status, d.status)}）" for d in query]
    refused = list(AuditLog.select().where(AuditLog.action == "dispatch.limit_refused")
                   .order_by(AuditLog.id.desc()).limit(5))
    text = "派遣一覧" + (f"（{DISPATCH_LABELS.get(status, status)}）" if status else "") + "\n" + ("\n".join(lines) or "該当なし")
    if refused:
        text += "\n\n上限による依頼の拒否（最近5件）\n" + "\n".join(
            f"{clock.to_local(ctx.program.timezone, a.at):%m/%d %H:%M} {a.target}（{a.before}/{a.after}回）" for a in refused)
    return text
