"""The fee sums /fees reads (``FeeTotal``, ``FeeMonth``) by their rule, as SQL.

``FeeTotal`` holds, per fee month and expert, the count and the sums of the
reports in the paid status (``accepted``: ``domain.fee_totals.PAYABLE``; the
storage layer does not import the domain), grouped by ``Report.fee_month`` and
``Dispatch.expert``: exactly the groups /fees once summed over all the
month's reports for every page. ``FeeMonth`` holds, per month, the same sums
over its ``FeeTotal`` rows and how many rows (experts) there are.

One set of queries for the report machine's hook (one expert's month, one
month), migration v12 and the seeds that write reports directly (everything:
:func:`fill`). A group with no paid report has no row.
"""
from __future__ import annotations

from typing import Any

from peewee import SQL, Expression, fn

from storage.models import Dispatch, FeeMonth, FeeTotal, Report

SUMS = ("gross_yen", "withholding_yen", "travel_yen", "net_yen")
TOTAL_COLUMNS = [FeeTotal.fee_month, FeeTotal.expert, FeeTotal.n, *(getattr(FeeTotal, c) for c in SUMS)]
MONTH_COLUMNS = [FeeMonth.fee_month, FeeMonth.experts, FeeMonth.n, *(getattr(FeeMonth, c) for c in SUMS)]


def by_expert(paid: str, where: Expression | None = None) -> Any:
    """(fee_month, expert, n, gross, withholding, travel, net) of the paid reports, per month and expert."""
    query = (Report.select(Report.fee_month, Dispatch.expert, fn.COUNT(Report.id),
                           *(fn.COALESCE(fn.SUM(getattr(Report, c)), 0) for c in SUMS))
             .join(Dispatch).where((Report.status == paid) & Report.fee_month.is_null(False))
             .group_by(Report.fee_month, Dispatch.expert))
    return query.where(where) if where is not None else query


def by_month(where: Expression | None = None) -> Any:
    """(fee_month, experts, n, gross, withholding, travel, net) per month, over its ``FeeTotal`` rows."""
    query = (FeeTotal.select(FeeTotal.fee_month, fn.COUNT(SQL("*")), fn.SUM(FeeTotal.n),
                             *(fn.SUM(getattr(FeeTotal, c)) for c in SUMS))
             .group_by(FeeTotal.fee_month))
    return query.where(where) if where is not None else query


def fill(paid: str) -> None:
    """Every row by the rule: whatever was there is replaced (idempotent; one INSERT … SELECT each)."""
    FeeMonth.delete().execute()
    FeeTotal.delete().execute()
    FeeTotal.insert_from(by_expert(paid), TOTAL_COLUMNS).execute()
    FeeMonth.insert_from(by_month(), MONTH_COLUMNS).execute()
