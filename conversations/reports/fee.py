"""The fee of a report: ``Program.fee`` for its draft, its month, and how it is worded.

The fee month is the month (Asia/Tokyo) of the dispatch date; a "day" cap
counts the expert's other sent reports with a dispatch the same Tokyo day.
The expert's summary, the reviewer's card and the secretariat's totals word
the fee the same way, so the wording lives here with the computation.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from conversations.kit.context import Context
from conversations.reports.common import dispatch_day, yen
from domain.statuses import REPORT_PAID
from program import FeeBreakdown
from storage.models import Dispatch, Report


def already_paid_today(ctx: Context, report: Report) -> int:
    """For a "day" cap: the gross of the expert's other sent reports with a dispatch the same Tokyo day."""
    d = report.dispatch
    day = dispatch_day(ctx, d)
    tz = ctx.program.timezone
    start = datetime.combine(day, time.min, tz).astimezone(timezone.utc).replace(tzinfo=None)
    end = datetime.combine(day + timedelta(days=1), time.min, tz).astimezone(timezone.utc).replace(tzinfo=None)
    rows = (Report.select(Report.gross_yen).join(Dispatch)
            .where((Dispatch.expert == d.expert_id) & Report.status.in_(REPORT_PAID) & (Report.id != report.id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                   & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end)))
    return sum(int(r.gross_yen or 0) for r in rows)


def compute_fee(ctx: Context, report: Report) -> FeeBreakdown:
    """``Program.fee`` for the draft's minutes and travel."""
    draft = report.draft or {}
    already = already_paid_today(ctx, report) if ctx.program.cap_scope == "day" else 0
    return ctx.program.fee(int(draft.get("minutes") or 0), travel_yen=int(draft.get("travel_yen") or 0),
                           already_paid_today_yen=already)


def fee_month(ctx: Context, report: Report) -> str:
    return ctx.program.fee_month(dispatch_day(ctx, report.dispatch))


def month_label(month: str) -> str:
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月分"


def withholding_text(ctx: Context, amount: int | None) -> str:
    """源泉徴収: 「なし」 while the program withholds nothing, else the amount."""
    return yen(amount) if ctx.program.withholding or amount else "なし"


def fee_line(ctx: Context, fee: FeeBreakdown, month: str) -> str:
    capped = "（上限適用）" if fee.capped else ""
    withholding = withholding_text(ctx, fee.withholding_yen)
    return (f"謝金 {yen(fee.gross_yen)}{capped}・源泉徴収 {withholding}・交通費 {yen(fee.travel_yen)}\n"
            f"支払額 {yen(fee.net_yen)}（{month_label(month)}）")
