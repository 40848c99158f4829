"""Dispatches in lists: a reviewer's 依頼一覧 (a carousel, 日時変更 / 取消) and the secretariat's /dispatches.

The secretariat's list also shows the latest requests refused by the
free-dispatch limit, which leave no dispatch behind, only an audit entry.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.messages import Choice
from conversations.kit.paging import page_of
from conversations.registration import review
from domain import clock
from domain.names import NAME_COLUMNS, expert_name
from domain.statuses import DISPATCH_BEFORE_CHECK_IN, DISPATCH_LABELS
from storage import status_counts
from storage.models import AuditLog, Business, Dispatch, Expert

UPCOMING_SHOWN = 10  # bubbles in 依頼一覧 (a carousel holds 12)


def upcoming_cards(ctx: Context, number: int = 1) -> list[Message]:
    """依頼一覧: the institution's dispatches before check-in, one bubble each in a carousel,
    日時変更 first and 取消 last (the first button is the one tapped by habit); ten a page,
    「次の10件」 (「依頼一覧 2ページ」) for the rest."""
    upcoming = ((Dispatch.institution == ctx.user.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                & Dispatch.status.in_(DISPATCH_BEFORE_CHECK_IN))
    query = (Dispatch.select(Dispatch, Business, *NAME_COLUMNS).join(Business).switch(Dispatch).join(Expert)
             .where(upcoming).order_by(Dispatch.scheduled_at, Dispatch.id))
    page = page_of(query, number, UPCOMING_SHOWN, count=Dispatch.select().where(upcoming))
    items = page.items
    if not items:
        return [msg.text("チェックイン前の派遣はありません。新しく依頼する場合は「支援依頼」と送ってください。", ["支援依頼"])]
    tz = ctx.program.timezone
    records = [(f"派遣No.{d.id}", DISPATCH_LABELS[d.status], [
        ("日時", clock.when_text(tz, d.scheduled_at)), ("事業者", d.business.name),
        ("所在地", d.business.address or "（地図の位置）"), ("テーマ", d.theme), ("専門家", expert_name(d.expert)),
    ], [("日時変更", review.action_data("dsp_move", id=d.id)), ("取消", review.action_data("dsp_cancel", id=d.id))])
        for d in items]
    head = page.heading("チェックイン前の派遣（日時の早い順）")
    cards: list[Message] = [flex.record_carousel(head, records)]
    if page.total > page.size:
        cards.append(msg.text(head, page.choices("依頼一覧")))
    return cards


def listing(ctx: Context, status: str | None, number: int = 1) -> tuple[str, list[Choice]]:
    """``/dispatches [status] [Nページ]`` for the secretariat, 20 a page (newest first, the business
    and the expert in the same query; the total from the kept counts), plus recent limit
    refusals; returns the text and the quick replies that turn the page."""
    query = (Dispatch.select(Dispatch, Business, *NAME_COLUMNS).join(Business).switch(Dispatch).join(Expert)
             .order_by(Dispatch.scheduled_at.desc(), Dispatch.id.desc()))
    kept = status_counts.counts("dispatch")  # counting 50,000 rows read them all; the triggers keep these
    if status:
        query = query.where(Dispatch.status == status)
    page = page_of(query, number, count=kept.get(status, 0) if status else sum(kept.values()))
    lines = [f"No.{d.id} {clock.when_text(ctx.program.timezone, d.scheduled_at)} {d.business.name} / {expert_name(d.expert)}"
             f"（{DISPATCH_LABELS.get(d.status, d.status)}）" for d in page.items]
    refused = list(AuditLog.select().where(AuditLog.action == "dispatch.limit_refused")
                   .order_by(AuditLog.id.desc()).limit(5)) if page.number == 1 else []
    title = page.heading("派遣一覧" + (f"（{DISPATCH_LABELS.get(status, status)}）" if status else ""))
    text = title + "\n" + ("\n".join(lines) or "該当なし")
    if refused:
        text += "\n\n上限による依頼の拒否（最近5件）\n" + "\n".join(
            f"{clock.to_local(ctx.program.timezone, a.at):%m/%d %H:%M} {a.target}（{a.before}/{a.after}回）" for a in refused)
    return text, page.choices("/dispatches" + (f" {status}" if status else ""))
