"""The counts the secretariat (/stats) and ops (python bot.py stats) look at.

SPEC: experts per status, dispatches per status, reports late. A report is
late when its dispatch was checked out more than ``report_reminder_days``
ago and it is still missing, unsent, or returned and not sent again — the
same rule that sends the reminders, so the number is what the reminders
have not fixed. Nothing here grows with the country (``tests/test_query_plans.py``): the
experts and dispatches per status are the counts triggers keep (``storage.status_counts``),
the late reports one range of ``Dispatch.report_due_at``, which the status machines keep.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from peewee import JOIN

from domain import lifecycle
from domain.statuses import DISPATCH_LABELS, REPORT_EDITABLE
from program import Program
from storage import status_counts
from storage.models import Attendance, Dispatch, Outbox, Report


@dataclass
class Stats:
    experts: dict[str, int]  # status → count, every lifecycle status
    dispatches: dict[str, int]  # status → count, every dispatch status
    reports_late: int
    failed_pushes: int

    def lines(self) -> list[str]:
        """The report in Japanese, for the secretariat's chat and the ops terminal alike."""
        return [
            "専門家の状況",
            *(f"  {lifecycle.LABELS[st]}：{n}件" for st, n in self.experts.items()),
            "派遣の状況",
            *(f"  {DISPATCH_LABELS[st]}：{n}件" for st, n in self.dispatches.items()),
            f"提出が遅れている報告書：{self.reports_late}件",
            f"送信失敗の通知：{self.failed_pushes}件",
        ]


def _checked_out_before(program: Program) -> datetime:
    """The reminders' line: checked out before it, a report not (again) sent is late."""
    now = program.now().astimezone(timezone.utc).replace(tzinfo=None)
    return now - timedelta(days=max(program.report_reminder_days, 0))


def late_reports(program: Program) -> int:
    """Completed dispatches checked out over N days ago whose report is not (again) sent.

    One range of ``Dispatch.report_due_at``'s index (the check-out time while the report is
    owed, kept by the status machines): the same at 10 experts as at 10,000.
    """
    return Dispatch.select().where(Dispatch.report_due_at < _checked_out_before(program)).count()


def late_reports_by_scan(program: Program) -> int:
    """The same number by the rule itself (every completed dispatch joined with its check-out and
    report): what ``report_due_at`` must always agree with; only the tests run it."""
    return (Dispatch.select(Dispatch.id)
            .join(Attendance, on=((Attendance.dispatch == Dispatch.id) & (Attendance.kind == "out")))
            .switch(Dispatch).join(Report, JOIN.LEFT_OUTER, on=(Report.dispatch == Dispatch.id))
            .where((Dispatch.status == "completed") & (Attendance.line_timestamp < _checked_out_before(program))
                   & (Report.id.is_null() | Report.status.in_(REPORT_EDITABLE)))
            .count())


def collect(program: Program) -> Stats:
    """The kept counts (a few rows) and two index ranges, whatever the size of the program."""
    experts, dispatches = status_counts.counts("expert"), status_counts.counts("dispatch")
    return Stats(
        experts={st: experts.get(st, 0) for st in lifecycle.STATUSES},
        dispatches={st: dispatches.get(st, 0) for st in DISPATCH_LABELS},
        reports_late=late_reports(program),
        failed_pushes=Outbox.select().where(Outbox.status == "failed").count(),
    )
