"""The background jobs flows ask for, in one place: their names, what runs them, how they are queued.

A flow cannot reach Redis (it sits below the handlers), so it asks for a
job by *name* — ``ctx.schedule(delay, REMIND_JOB, …)`` with the name its own
module declares — and the webhook queues it here once the step has
committed (:func:`after_commit`). RQ stores one dotted path for all of
them, ``handlers.jobs.run``, with the name as first argument: moving a
flow's code never strands a job already queued, and nothing in the lower
layers names a function of this one.

The two other jobs the worker runs belong to their own modules and are
queued there: a push (``handlers.outbox.deliver``, after every commit) and
a deferred event (``handlers.webhook.process_deferred``, when a user's lock
is busy).

The daily retention purge (:func:`purge_daily`, ``domain.retention``) runs
in every worker's timer thread; a Redis key taken with SET NX lets only one
worker run it each day. ``python bot.py purge`` runs the same :func:`purge`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
import structlog
from rq import Queue, get_current_job
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from conversations import roles
from conversations.kit.context import Context
from conversations.reports import reminders
from domain import retention
from handlers import outbox, richmenu
from handlers.runtime import OUTBOX_QUEUE, Runtime
from storage import db as storage_db

log = structlog.get_logger("jobs")


def remind_report(report_id: int, n: int = 1, days: float | None = None) -> str:
    """Remind the expert of an unsent report; deliver the push now and schedule the next reminder."""
    job = get_current_job()
    result = reminders.remind(report_id, n, days, job_id=job.id if job is not None else None)
    if job is not None and result.outbox_id is not None:
        outbox.enqueue([result.outbox_id], for_worker=True)
        if result.next_n is not None:  # through the scheduler, even with 0 days: never in the same breath
            Queue(job.origin, connection=job.connection).enqueue_in(
                timedelta(days=days or 0), run, reminders.REMIND_JOB, report_id, result.next_n, days,
                job_id=reminders.reminder_job_id(report_id, result.next_n))
    return result.outcome


# Every job a flow may ask for, by the name its module declares.
JOBS: dict[str, Callable[..., str]] = {
    reminders.REMIND_JOB: remind_report,
    roles.MENU_JOB: richmenu.link_user,
}


def run(name: str, *args: Any) -> str:
    """What RQ calls for every named job (the one dotted path it stores)."""
    return JOBS[name](*args)


def schedule(queue: Queue, name: str, *args: Any, delay: timedelta, job_id: str) -> None:
    """Queue job ``name`` to run after ``delay`` (at once when it is zero: no wait for the scheduler's tick)."""
    if name not in JOBS:
        raise KeyError(f"no background job named {name!r}")
    if delay.total_seconds() <= 0:
        queue.enqueue(run, name, *args, job_id=job_id)
    else:
        queue.enqueue_in(delay, run, name, *args, job_id=job_id)


def after_commit(rt: Runtime, ctx: Context) -> None:
    """The jobs a step asked for (report reminders, rich-menu relinks) and those it cancelled.

    Runs after the step's transaction committed; a Redis failure only logs,
    since every job re-checks the records it acts on when it runs."""
    if not ctx.jobs and not ctx.cancelled_jobs:
        return
    queue = rt.queue(OUTBOX_QUEUE)
    for delay, name, args, job_id in ctx.jobs:
        try:
            schedule(queue, name, *args, delay=delay, job_id=job_id)
        except redis.RedisError:
            log.warning("jobs.schedule_failed", job_id=job_id)
    for job_id in ctx.cancelled_jobs:
        try:
            Job.fetch(job_id, connection=rt.redis).cancel()
        except (NoSuchJobError, InvalidJobOperation, redis.RedisError):
            pass  # already run, never scheduled, or Redis busy: the job re-checks the report itself


# --- the daily retention purge --------------------------------------------------------------------

PURGE_JOB = "retention.purge"
PURGE_EVERY = timedelta(hours=23)  # the guard's expiry: once a day, drifting a little earlier each day


def purge(rt: Runtime, *, actor: str = "system", dry_run: bool = False) -> retention.Purged:
    """Run the retention purge now (``domain.retention``) and queue the notices it wrote."""
    done = retention.purge(rt.program, rt.files, rt.log_dir, rt.program.now(), dry_run, actor=actor)
    if not dry_run:  # daily, after the day's deletions: the planner's statistics follow the tables
        storage_db.refresh_statistics()
    if done.outbox_ids:
        outbox.enqueue(done.outbox_ids, for_worker=True)  # a failure here: the sweep sends them
    log.info("retention.purged", dry_run=dry_run, **done.counts())
    return done


def purge_daily(rt: Runtime) -> retention.Purged | None:
    """The worker's daily purge: only the worker that takes today's key runs it (None: not this one).

    A purge that fails gives the key back, so the next tick (of any worker) tries again."""
    key = rt.keys.daily(PURGE_JOB)
    if not rt.worker_redis.set(key, str(time.time()), nx=True, ex=int(PURGE_EVERY.total_seconds())):
        return None
    try:
        return purge(rt)
    except Exception:
        rt.worker_redis.delete(key)
        raise
