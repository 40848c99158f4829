"""The counts the secretariat (/stats) and ops (python bot.py stats) look at.

SPEC: experts per status, dispatches per status, reports late. A report is
late when its dispatch was checked out more than ``report_reminder_days``
ago and it is still missing, unsent, or returned and not sent again — the
same rule that sends the reminders, so the number is what the reminders
have not fixed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from peewee import JOIN, fn

from domain import lifecycle
from domain.statuses import DISPATCH_LABELS, REPORT_EDITABLE
from program import Program
from storage.models import Attendance, Dispatch, Expert, Outbox, Report, utcnow


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


def late_reports(program: Program) -> int:
    """Completed dispatches checked out over N days ago whose report is not (again) sent."""
    checked_out_before = utcnow() - timedelta(days=max(program.report_reminder_days, 0))
    return (Dispatch.select(Dispatch.id)
            .join(Attendance, on=((Attendance.dispatch == Dispatch.id) & (Attendance.kind == "out")))
            .switch(Dispatch).join(Report, JOIN.LEFT_OUTER, on=(Report.dispatch == Dispatch.id))
            .where((Dispatch.status == "completed") & (Attendance.line_timestamp < checked_out_before)
                   & (Report.id.is_null() | Report.status.in_(REPORT_EDITABLE)))
            .count())


def collect(program: Program) -> Stats:
    # peewee's stubs type ``.tuples()`` as a query of models; it yields (status, count) rows.
    experts = dict(cast(Iterable[tuple[str, int]],
                        Expert.select(Expert.status, fn.COUNT(Expert.id)).group_by(Expert.status).tuples()))
    dispatches = dict(cast(Iterable[tuple[str, int]],
                           Dispatch.select(Dispatch.status, fn.COUNT(Dispatch.id)).group_by(Dispatch.status).tuples()))
    return Stats(
        experts={st: experts.get(st, 0) for st in lifecycle.STATUSES},
        dispatches={st: dispatches.get(st, 0) for st in DISPATCH_LABELS},
        reports_late=late_reports(program),
        failed_pushes=Outbox.select().where(Outbox.status == "failed").count(),
    )
