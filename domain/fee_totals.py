"""The month's fees per expert, kept as the reports move: /fees reads a page and one row.

/fees shows, for a fee month, each paid expert's accepted reports summed (20
experts a page, by application number), the month's totals and how many
experts it pays. Summing every accepted report of the month for each page
grew with the program (4,000 reports in a busy month at 10,000 experts); the
sums are kept instead, by the rule (``storage.fee_sums``), and only by the
report machine (``domain.statuses``): after a move into or out of
:data:`PAYABLE`, the expert's row of the report's month (``FeeTotal``) and
the month's row (``FeeMonth``) are recomputed in the move's transaction.

Nothing else changes what they sum: a report's amounts and month are written
with its 送信 (the submit move, before it can be accepted), no move leaves
``accepted``, and what 退会 and the retention erase afterwards keeps a
report's amounts, month and status (``domain.withdrawal``). Migration v12
fills them from the reports; a seed that writes reports directly calls
:func:`refill_fee_totals`. :func:`fees_by_scan` is the sum /fees used to run,
which the rows must always equal; only the tests run it.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from peewee import fn

from storage import fee_sums
from storage.models import Dispatch, FeeMonth, FeeTotal, Report

PAYABLE = "accepted"  # only accepted reports are paid (/fees, ``domain.exports``)


def refresh_fee_totals(month: str | None, expert_id: int) -> None:
    """Recompute by the rule the expert's row of ``month`` and the month's row (created, updated
    or deleted: a group with nothing paid has no row). One small grouped query over the expert's
    dispatches, one over the month's rows, a few single-row writes.

    The month's row is locked first (created if missing), so two reviewers accepting reports of
    one month at once take turns, and the second sums what the first committed (PostgreSQL, read
    committed: each statement sees what committed before it; SQLite: one writer at a time)."""
    if month is None:
        return
    _lock(month)
    row = (fee_sums.by_expert(PAYABLE, (Report.fee_month == month) & (Dispatch.expert == expert_id))
           .tuples().first())
    key = (FeeTotal.fee_month == month) & (FeeTotal.expert == expert_id)
    if row is None:
        FeeTotal.delete().where(key).execute()
    else:
        values = dict(zip(fee_sums.TOTAL_COLUMNS, row))
        if not FeeTotal.update({c: values[c] for c in fee_sums.TOTAL_COLUMNS[2:]}).where(key).execute():
            FeeTotal.insert(values).execute()  # no one else writes this row meanwhile: the month is locked
    sums = fee_sums.by_month(FeeTotal.fee_month == month).tuples().first()
    if sums is None:
        FeeMonth.delete().where(FeeMonth.fee_month == month).execute()
    else:
        FeeMonth.update(dict(zip(fee_sums.MONTH_COLUMNS[1:], sums[1:]))).where(FeeMonth.fee_month == month).execute()


def _lock(month: str) -> None:
    """Hold the month's row for the rest of the transaction (an UPDATE locks it), inserting it first
    when there is none yet; a row deleted meanwhile by another transaction is inserted again."""
    while not FeeMonth.update(n=FeeMonth.n).where(FeeMonth.fee_month == month).execute():
        FeeMonth.insert(fee_month=month).on_conflict_ignore().execute()


def refill_fee_totals() -> None:
    """Every row by the rule (the migration's SQL): for seeds and tests that write reports directly."""
    fee_sums.fill(PAYABLE)


def month_sums(month: str) -> FeeMonth:
    """The month's row; a row of zeros (unsaved) when nothing of the month is paid."""
    return FeeMonth.get_or_none(FeeMonth.fee_month == month) or FeeMonth(fee_month=month)


def experts_of(month: str) -> Any:
    """The month's paid experts' rows by application number (page it: the index is in that order)."""
    return FeeTotal.select().where(FeeTotal.fee_month == month).order_by(FeeTotal.expert)


def fees_by_scan(month: str) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """The month by summing its accepted reports, as /fees did before v12: (expert, n, gross,
    withholding, travel, net) per expert in order, and (experts, n, gross, …) in all."""
    accepted = (Report.status == PAYABLE) & (Report.fee_month == month)
    sums = [fn.COUNT(Report.id), *(fn.COALESCE(fn.SUM(getattr(Report, c)), 0) for c in fee_sums.SUMS)]
    grouped = cast(Iterable[tuple[int, ...]], Report.select(Dispatch.expert, *sums).join(Dispatch).where(accepted)
                   .group_by(Dispatch.expert).order_by(Dispatch.expert).tuples())  # stubs type rows as models
    rows = [tuple(int(v) for v in row) for row in grouped]
    total = cast(tuple[int, ...], Report.select(*sums).where(accepted).tuples().get())
    return rows, (len(rows), *(int(v) for v in total))
