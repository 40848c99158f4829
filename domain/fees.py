"""What a report pays and in which month: the program's fee rules applied to the stored records.

``Program.fee`` knows the rates, units, caps and withholding; this module
feeds it one report: the face-to-face minutes and travel of its draft and,
under a "day" cap (``fee.cap_scope = "day"``), the gross the expert's other
sent reports already take on a dispatch the same local day. The fee month
is the month, in the program's time zone (Asia/Tokyo), of the dispatch date.

It takes the ``Program`` and the records, never a conversation, so the
expert's summary, 送信, the reviewer's card and anything else that prices a
report compute it the same way (``handlers -> conversations -> domain``).
How a fee is worded stays with the conversation (``conversations.reports.fee``).
"""
from __future__ import annotations

from datetime import date

from domain import clock
from domain.statuses import REPORT_PAID
from program import FeeBreakdown, Program
from storage.models import Dispatch, Report


def dispatch_day(program: Program, d: Dispatch) -> date:
    """The dispatch date in the program's zone: it decides the fee month and the "day" cap."""
    return clock.local_date(program.timezone, d.scheduled_at)


def already_paid_today(program: Program, report: Report) -> int:
    """For a "day" cap: the gross of the expert's other sent reports with a dispatch the same local day."""
    d = report.dispatch
    start, end = clock.local_day_bounds(program.timezone, dispatch_day(program, d))
    rows = (Report.select(Report.gross_yen).join(Dispatch)
            .where((Dispatch.expert == d.expert_id) & Report.status.in_(REPORT_PAID) & (Report.id != report.id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                   & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end)))
    return sum(int(r.gross_yen or 0) for r in rows)


def compute_fee(program: Program, report: Report) -> FeeBreakdown:
    """``Program.fee`` for the draft's minutes and travel (and, under a "day" cap, what that day already pays)."""
    draft = report.draft or {}
    already = already_paid_today(program, report) if program.cap_scope == "day" else 0
    return program.fee(int(draft.get("minutes") or 0), travel_yen=int(draft.get("travel_yen") or 0),
                       already_paid_today_yen=already)


def fee_month(program: Program, report: Report) -> str:
    """The report's fee month, "YYYY-MM": the month of its dispatch date in the program's zone."""
    return program.fee_month(dispatch_day(program, report.dispatch))
