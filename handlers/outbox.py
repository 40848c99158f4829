"""Delivering pushes from the outbox, exactly once.

A status change and the pushes it causes commit in one transaction (the
``Outbox`` rows). After commit the webhook enqueues each row; the RQ worker
pushes it with ``X-Line-Retry-Key`` = the row's UUID, so a retry after a
lost response is refused by LINE with 409 — which means "delivered". A
sweep re-enqueues rows left pending (a crash between commit and enqueue).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta

import structlog
from rq import Retry

from handlers.line_api import LineApiError
from handlers.logs import pseudonym
from handlers.runtime import OUTBOX_QUEUE, Runtime, current
from storage.db import serialized_writes
from storage.models import LineUser, Outbox, utcnow

log = structlog.get_logger("outbox")

MAX_ATTEMPTS = 20  # across RQ retries and sweeps; then it is failed and ops are told


def enqueue(ids: Iterable[int], *, for_worker: bool = False) -> None:
    """Queue delivery jobs; a failure here is caught later by the sweep."""
    rt = current()
    queue = rt.queue(OUTBOX_QUEUE, for_worker=for_worker)
    intervals = list(rt.outbox_retry_intervals)
    for outbox_id in ids:
        try:
            queue.enqueue(deliver, outbox_id, retry=Retry(max=len(intervals), interval=intervals))
        except Exception as exc:  # Redis hiccup: the row stays pending for the sweep
            log.warning("outbox.enqueue_failed", outbox_id=outbox_id, error=type(exc).__name__)


def deliver(outbox_id: int) -> str:
    """Push one outbox row. Raises on a transient failure so RQ retries it."""
    rt = current()
    row = Outbox.get_or_none(Outbox.id == outbox_id)
    if row is None or row.status != "pending":
        return "skipped"
    if row.recipients is not None:
        return _multicast(rt, row)
    if _blocked(row.to):
        # The user blocked the account: LINE would refuse or drop it, and a retry
        # would only repeat that. Closed for good; a re-follow starts afresh.
        log.info("outbox.blocked", outbox_id=row.id, to=pseudonym(row.to), reason=row.reason)
        return _mark(row, "blocked", "blocked by the user")
    row.attempts += 1
    with structlog.contextvars.bound_contextvars(user=pseudonym(row.to), outbox_id=row.id):
        return _push(rt, row)


def _multicast(rt: Runtime, row: Outbox) -> str:
    """One call for up to 500 users; those who blocked the account since are left out
    (LINE would drop them anyway). The retry key makes a repeated call a 409, as for a push."""
    wanted: list[str] = json.loads(row.recipients or "[]")
    blocked = {u.line_user_id for u in LineUser.select(LineUser.line_user_id)
               .where(LineUser.line_user_id.in_(wanted) & (LineUser.following == False))}  # noqa: E712  # peewee's SQL comparison
    to = [u for u in wanted if u not in blocked]
    if not to:
        return _mark(row, "blocked", "every recipient blocked the account")
    row.attempts += 1
    with structlog.contextvars.bound_contextvars(outbox_id=row.id, recipients=len(to)):
        return _send(row, lambda: rt.line.multicast(to, row.messages, retry_key=row.uuid))


def _blocked(line_user_id: str) -> bool:
    user = LineUser.get_or_none(LineUser.line_user_id == line_user_id)
    return user is not None and not user.following


def _push(rt: Runtime, row: Outbox) -> str:
    return _send(row, lambda: rt.line.push(row.to, row.messages, retry_key=row.uuid))


def _send(row: Outbox, call: Callable[[], None]) -> str:
    """Make the API call and close the row by its outcome; a transient failure raises for RQ's retry."""
    try:
        call()
    except LineApiError as exc:
        if exc.status == 409:
            return _mark(row, "sent", "already accepted (409)")
        if exc.monthly_quota:
            log.error("outbox.quota_exhausted", outbox_id=row.id, to=pseudonym(row.to), reason=row.reason)
            return _mark(row, "failed", "monthly message quota exhausted (429)")
        if exc.transient and row.attempts < MAX_ATTEMPTS:
            row.last_error = str(exc)[:500]
            with serialized_writes():
                row.save(only=[Outbox.attempts, Outbox.last_error])
            log.warning("outbox.retry", outbox_id=row.id, status=exc.status, attempts=row.attempts)
            raise
        log.error("outbox.failed", outbox_id=row.id, status=exc.status, attempts=row.attempts, reason=row.reason)
        return _mark(row, "failed", str(exc)[:500])
    return _mark(row, "sent", None)


def _mark(row: Outbox, status: str, error: str | None) -> str:
    """Close the row. The rendered messages are cleared: once delivered (or failed for good) they
    are only a copy of personal data; the metadata (to, kind, status, times, retry key) stays."""
    row.status = status
    row.last_error = error
    row.messages = None
    if status == "sent":
        row.sent_at = utcnow()
    # Queued on SQLite's write lock like every writer: a long batch (conditions announce) that
    # read first and writes next is never overtaken by this one-row write (SQLITE_BUSY_SNAPSHOT).
    with serialized_writes():
        row.save(only=[Outbox.status, Outbox.last_error, Outbox.sent_at, Outbox.attempts, Outbox.messages])
    log.info("outbox.delivered" if status == "sent" else "outbox.closed", outbox_id=row.id, status=status,
             to=pseudonym(row.to), attempts=row.attempts)
    return status


def sweep(older_than_seconds: int = 60) -> int:
    """Re-enqueue rows still pending after a while; returns how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    ids = [row.id for row in Outbox.select(Outbox.id).where((Outbox.status == "pending") & (Outbox.created_at <= cutoff))]
    if ids:
        enqueue(ids, for_worker=True)
        log.info("outbox.sweep", requeued=len(ids))
    return len(ids)
