"""``Dispatch.report_due_at`` (v10) by its rule, as SQL: the reports late are one range of its index.

The report machine's hook (``domain.statuses``), the migration that fills older rows and the
seeds that write a past directly all use this one expression, so they cannot disagree.
"""
from __future__ import annotations

from collections.abc import Sequence

from peewee import Case, Node, fn

from storage.models import Attendance, Dispatch, Report


def report_due_rule(editable: Sequence[str]) -> Node:
    """``Dispatch.report_due_at`` by its rule, as SQL over the dispatch row an UPDATE writes: the
    (first) check-out time of a completed dispatch whose report is missing or in ``editable``, else NULL.

    One expression for the status machines' hook, the migration that fills older rows and the
    seeds that write a past directly; ``editable`` is ``domain.statuses.REPORT_EDITABLE`` (the
    storage layer does not import the domain).
    """
    checked_out = (Attendance.select(fn.MIN(Attendance.line_timestamp))
                   .where((Attendance.dispatch == Dispatch.id) & (Attendance.kind == "out")))
    sent = Report.select(Report.id).where((Report.dispatch == Dispatch.id) & Report.status.not_in(list(editable)))
    return Case(None, [((Dispatch.status == "completed") & ~fn.EXISTS(sent), checked_out)], None)

