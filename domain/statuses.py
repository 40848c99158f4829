"""The status machines of dispatches, reports and change requests.

Each is a :class:`~domain.status_machine.StatusMachine` (the shape of
the expert's lifecycle): the moves the flows make, declared once, so a
status can only change along them — audited — and anything else is refused
and audited. The flows still decide *when* to move (scope, limits, dates);
the machine decides *whether* the move exists from where the record is.

Dispatch (支援依頼)::

    requested → accepted → checked_in → completed
    requested → declined (reason)          requested → cancelled (free-dispatch limit hit on 受諾)
    requested / accepted → cancelled (reason)   requested / accepted → same status (new date)

Report (支援実施報告書)::

    draft → submitted → accepted
              ↕ returned (reason; fixed and submitted again)

ChangeRequest (登録内容の変更)::

    pending → approved | returned (reason; a fix is a new request)

``Dispatch.report_due_at`` follows from these statuses, kept here and nowhere
else: the check-out (``check_out``) writes its time with the status, and every
report move recomputes it by the rule (:func:`refresh_report_due`): the
check-out time while the dispatch is completed and its report unsent (none,
a draft, or returned), NULL once it is submitted or accepted. A report row
created as a draft changes nothing (no report and a draft are both unsent).
The reports late (``domain.stats``) are then one range of its index.

The fee sums /fees reads (``FeeTotal``, ``FeeMonth``: ``domain.fee_totals``)
are kept the same way: a move into or out of ``accepted`` recomputes by the
rule the report's expert's row of its fee month and the month's row.
"""
from __future__ import annotations

from typing import Any

from peewee import Expression

from domain.fee_totals import PAYABLE, refresh_fee_totals
from domain.status_machine import Move, StatusMachine, has_reason
from storage.models import ChangeRequest, Dispatch, Report
from storage.report_due import report_due_rule


def has_new_date(move: Move) -> bool:
    """A reschedule is a new date: without one there is nothing to move."""
    return move.changes.get("scheduled_at") is not None


def has_check_out_time(move: Move) -> bool:
    """A check-out starts its report's clock: the check-out's own time is written with it."""
    return move.changes.get("report_due_at") is not None


def has_fee(move: Move) -> bool:
    """A report is sent with its fee computed and stored (only accepted fees are paid)."""
    return move.changes.get("net_yen") is not None


# What each status is called in Japanese, and the groups the rules count.
DISPATCH_LABELS = {
    "requested": "受諾待ち", "accepted": "受諾済み", "declined": "辞退", "cancelled": "取消",
    "checked_in": "支援中", "completed": "完了",
}
DISPATCH_COUNTED = ("accepted", "checked_in", "completed")  # toward a business's free-dispatch limit
DISPATCH_BEFORE_CHECK_IN = ("requested", "accepted")
REPORT_LABELS = {"draft": "作成中", "submitted": "確認待ち", "returned": "差し戻し", "accepted": "受理済み"}
REPORT_EDITABLE = ("draft", "returned")  # the expert may still write (a draft, or returned and not sent again)
REPORT_PAID = ("submitted", "accepted")  # counted for a "day" fee cap

DISPATCH_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "accept", "source": "requested", "dest": "accepted"},
    {"trigger": "decline", "source": "requested", "dest": "declined", "conditions": has_reason},
    # 受諾 found the business's free dispatches used up meanwhile: the request is void.
    {"trigger": "cancel_over_limit", "source": "requested", "dest": "cancelled"},
    {"trigger": "cancel", "source": ["requested", "accepted"], "dest": "cancelled", "conditions": has_reason},
    # A new date keeps the status (before check-in only).
    {"trigger": "reschedule", "source": "requested", "dest": "requested", "conditions": has_new_date},
    {"trigger": "reschedule", "source": "accepted", "dest": "accepted", "conditions": has_new_date},
    {"trigger": "check_in", "source": "accepted", "dest": "checked_in"},
    {"trigger": "check_out", "source": "checked_in", "dest": "completed", "conditions": has_check_out_time},
]

DISPATCH = StatusMachine(
    "dispatch", "派遣の状態", Dispatch,
    list(DISPATCH_LABELS),
    DISPATCH_TRANSITIONS, initial="requested",
)

REPORT_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "submit", "source": ["draft", "returned"], "dest": "submitted", "conditions": has_fee},
    {"trigger": "accept", "source": "submitted", "dest": "accepted"},
    {"trigger": "return", "source": "submitted", "dest": "returned", "conditions": has_reason},
]


def refresh_report_due(where: Expression) -> int:
    """Recompute ``Dispatch.report_due_at`` by its rule for the dispatches ``where`` selects (one
    UPDATE); the report machine runs it after every move, seeds after writing a past directly."""
    return int(Dispatch.update(report_due_at=report_due_rule(REPORT_EDITABLE)).where(where).execute())


def _report_moved(report: Report, before: str, after: str) -> None:
    dispatch_id = report.dispatch_id  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    refresh_report_due(Dispatch.id == dispatch_id)
    if PAYABLE in (before, after):  # only a paid report is summed: no other move changes a sum
        refresh_fee_totals(report.fee_month, Dispatch.select(Dispatch.expert).where(Dispatch.id == dispatch_id).scalar())


REPORT = StatusMachine(
    "report", "報告書の状態", Report,
    list(REPORT_LABELS),
    REPORT_TRANSITIONS, initial="draft", after_move=_report_moved,
)

CHANGE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "approve", "source": "pending", "dest": "approved"},
    {"trigger": "return", "source": "pending", "dest": "returned", "conditions": has_reason},
]

CHANGE = StatusMachine(
    "change", "変更申請の状態", ChangeRequest,
    ["pending", "approved", "returned"],
    CHANGE_TRANSITIONS, initial="pending",
)

MACHINES: list[StatusMachine] = [DISPATCH, REPORT, CHANGE]
