"""支援実施報告書 reminders: a push when a report is still unsent days after
check-out, or still not resubmitted days after it was returned.

Scheduling needs Redis, which this layer must not reach, so the writing
flow asks the context to schedule the RQ job (``ctx.schedule``, queued by
the webhook after commit); :func:`remind` runs in the worker, checks the
report is still unsent, writes the push to the outbox and schedules itself
once more. Submission cancels the pending job (``ctx.unschedule``), and
``remind`` re-checks the status anyway.

RQ stores a job as the dotted path of its function, and the reminders
already queued in production name ``conversations.reports.feature.remind``. That
path is therefore the job's public name: :data:`REMIND_JOB` keeps it, and
``conversations.reports.feature`` re-exports :func:`remind`, so moving the function
(as this module did) never strands a queued job.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from rq import Queue, get_current_job

from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.reports.common import checks, find_report, save
from domain.statuses import REPORT_EDITABLE
from storage import db as storage_db
from storage import repo
from storage.db import database
from storage.models import Dispatch, Report, utcnow

MAX_REMINDERS = 2  # the first reminder, and once more

# Queued jobs name their function by this path (see the module docstring):
# keep it, and keep ``remind`` importable from ``conversations.reports.feature``.
REMIND_JOB = "conversations.reports.feature.remind"


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


def schedule_reminder(queue: Any, report_id: int, days: float, n: int = 1,
                      delay: timedelta | None = None) -> str:
    """Put ``remind(report_id, n, days)`` on an RQ ``queue`` to run after ``delay`` (default ``days``)."""
    job_id = reminder_job_id(report_id, n)
    queue.enqueue_in(delay if delay is not None else timedelta(days=days), REMIND_JOB, report_id, n, days,
                     job_id=job_id)
    return job_id


def remind(report_id: int, n: int = 1, days: float | None = None) -> str:
    """RQ job: remind the expert of an unsent report, then schedule one more reminder.

    Runs in the worker, long after the webhook: everything is checked again
    (a submitted, returned or deleted report gets nothing). Within RQ the
    push is enqueued for delivery at once and the next reminder scheduled
    on the same queue; called directly, the outbox sweep delivers it.
    """
    job = get_current_job()
    with storage_db.serialized_writes(), database.atomic():
        report = find_report(report_id)
        if report is None:
            return "gone"
        if report.status not in REPORT_EDITABLE:  # a draft, or returned and not yet sent again
            return "not_needed"
        draft = report.draft or {}
        if int(draft.get("reminders_sent") or 0) >= n:
            return "already_sent"
        d = report.dispatch
        user = d.expert.user
        if not user.following:
            return "not_following"
        what = ("差し戻された支援実施報告書がまだ再提出されていません" if report.status == "returned"
                else "支援実施報告書がまだ提出されていません")
        row = repo.queue_push(user.line_user_id, [msg.text(
            f"{what}（派遣No.{d.id} {d.business.name}）。\n"
            "「報告書」と送ると、続きから入力できます。", ["報告書"]).to_dict()], "report_reminder")
        repo.audit("system", "report.reminder", target=f"report:{report.id}", after=str(n))
        again = job is not None and n < MAX_REMINDERS and days is not None
        fields: dict[str, Any] = {"reminders_sent": n}
        if again:
            fields["reminder_job_id"] = reminder_job_id(report.id, n + 1)
        elif job is not None and draft.get("reminder_job_id") == job.id:
            fields["reminder_job_id"] = None  # this was the last one: nothing left to cancel
        save(report, **fields)
    if job is not None:
        queue = Queue(job.origin, connection=job.connection)
        queue.enqueue("handlers.outbox.deliver", row.id)  # by name: this layer does not import handlers
        if again:
            schedule_reminder(queue, report.id, float(days or 0), n + 1)
    return "reminded"
