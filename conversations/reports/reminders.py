"""支援実施報告書 reminders: a push when a report is still unsent days after
check-out, or still not resubmitted days after it was returned.

Scheduling needs Redis, which this layer must not reach, so the writing
flow asks the context for the job named :data:`REMIND_JOB`
(``ctx.schedule``; ``handlers.jobs`` queues it after commit and runs it in
the worker). :func:`remind` checks the report is still unsent, writes the
push to the outbox and says whether one more reminder is due; the job
delivers the push and schedules that one. Submission cancels the pending
job (``ctx.unschedule``), and ``remind`` re-checks the status anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.wire import wire
from conversations.reports.common import checks, find_report, save
from domain.statuses import REPORT_EDITABLE
from storage import db as storage_db
from storage import repo
from storage.db import database
from storage.models import Dispatch, Report, utcnow

MAX_REMINDERS = 2  # the first reminder, and once more
REMIND_JOB = "report.remind"  # the background job's name (handlers.jobs runs it)


@dataclass(frozen=True)
class Reminded:
    """What one reminder did: ``outcome``, the push to deliver, the next reminder due (its number)."""

    outcome: str
    outbox_id: int | None = None
    next_n: int | None = None


def reminder_job_id(report_id: int, n: int) -> str:
    return f"report-reminder-{report_id}-{n}"


def schedule_first_reminder(ctx: Context, report: Report, d: Dispatch) -> None:
    """Ask for ``remind`` N days after check-out, once per report.

    ``ctx.schedule`` hands the job to the webhook, which queues it on the
    outbox queue after commit (run by ``worker --with-scheduler``).
    """
    draft = report.draft or {}
    days = ctx.program.report_reminder_days
    if days < 0 or draft.get("reminder_job_id") or draft.get("reminders_sent"):
        return
    _, check_out = checks(d)
    due = (check_out.line_timestamp if check_out else utcnow()) + timedelta(days=days)
    delay = max(due - utcnow(), timedelta(0))
    job_id = reminder_job_id(report.id, 1)
    ctx.schedule(delay, REMIND_JOB, report.id, 1, days, job_id=job_id)
    save(report, reminder_job_id=job_id)


def schedule_after_return(ctx: Context, report: Report) -> None:
    """A returned report is owed again: the reminders start over, N days from now."""
    days = ctx.program.report_reminder_days
    if days < 0:
        return
    job_id = reminder_job_id(report.id, 1)
    ctx.schedule(timedelta(days=days), REMIND_JOB, report.id, 1, days, job_id=job_id)
    save(report, reminders_sent=None, reminder_job_id=job_id)


def cancel_reminder(ctx: Context, job_id: str) -> None:
    ctx.unschedule(job_id)


def remind(report_id: int, n: int = 1, days: float | None = None, *, job_id: str | None = None) -> Reminded:
    """Remind the expert of an unsent report (reminder number ``n``).

    Runs in the worker, long after the webhook: everything is checked again
    (a submitted, returned or deleted report gets nothing). ``job_id`` is the
    running job's: only a job schedules a next reminder (``next_n``); called
    directly, nothing more is scheduled and the outbox sweep delivers the push.
    """
    with storage_db.serialized_writes(), database.atomic():
        report = find_report(report_id)
        if report is None:
            return Reminded("gone")
        if report.status not in REPORT_EDITABLE:  # a draft, or returned and not yet sent again
            return Reminded("not_needed")
        draft = report.draft or {}
        if int(draft.get("reminders_sent") or 0) >= n:
            return Reminded("already_sent")
        d = report.dispatch
        if d.expert.status == "withdrawn":  # 退会: the report can no longer be sent
            return Reminded("withdrawn")
        user = d.expert.user
        if not user.following:
            return Reminded("not_following")
        what = ("差し戻された支援実施報告書がまだ再提出されていません" if report.status == "returned"
                else "支援実施報告書がまだ提出されていません")
        row = repo.queue_push(user.line_user_id, [wire(msg.text(
            f"{what}（派遣No.{d.id} {d.business.name}）。\n"
            "「報告書」と送ると、続きから入力できます。", ["報告書"]))], "report_reminder")
        repo.audit("system", "report.reminder", target=f"report:{report.id}", after=str(n))
        again = job_id is not None and n < MAX_REMINDERS and days is not None
        fields: dict[str, Any] = {"reminders_sent": n}
        if again:
            fields["reminder_job_id"] = reminder_job_id(report.id, n + 1)
        elif job_id is not None and draft.get("reminder_job_id") == job_id:
            fields["reminder_job_id"] = None  # this was the last one: nothing left to cancel
        save(report, **fields)
    return Reminded("reminded", row.id, n + 1 if again else None)
