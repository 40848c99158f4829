"""Personal data kept only as long as needed: the purge behind ``python bot.py purge`` and the worker's daily run.

``program.toml``'s ``[retention]`` says how long each trace is kept; this
module removes what is older, kind by kind:

* **webhook event ids** (``ProcessedEvent``): kept one day longer than the
  webhook accepts a signed event (``processed_event_days``), so that purging
  an id never opens a replay window — an event old enough to have lost its id
  is refused by its LINE timestamp (``handlers.webhook``), with a day to spare
  for clock skew between LINE and us;
* **outbox rows** closed (sent, failed, blocked) longer than ``outbox_days``;
  a closed row that still holds its messages (closed before payloads were
  cleared on delivery) has them cleared whatever its age;
* **photos of closed applications** (rejected, withdrawn) untouched for
  ``closed_application_photo_days``: the files, and their ids in the draft
  and the profile. The decision and its reason stay: they are the record;
* **abandoned registration drafts** (never sent, no activity for
  ``abandoned_draft_days``): the user is told ``abandoned_draft_notice_days``
  before, once (the notice is an audit row, so it is remembered without
  touching their answers), and any message of theirs counts as activity
  and starts the clock again. Then the ``Expert`` row and its photos go;
  the LINE account stays, and 「登録」 starts afresh;
* **what 退会 kept for the accounts** (``domain.withdrawal``), once the
  withdrawal — the audited lifecycle move to ``withdrawn`` — is
  ``records_years`` old: the sealed name, kana and bank account, the
  blind-index rows, and the route, photos and reasons the expert's reports
  and exception reports hold. The record becomes 「退会者」; its dispatches'
  fees and reports stay as the totals they are, holding nothing of the
  person. An expert who applied again (no longer ``withdrawn``) is left as
  they are: their new application is a record in force;
* **log files** (``*.jsonl``) last written more than ``log_days`` ago; never
  one named for today (a process writes its day's file: ``handlers.logs``).

Database work goes in batches, each its own short transaction under
``serialized_writes`` (SQLite's write lock is never held for long; a crash
leaves a consistent, resumable state), and re-checks its rows inside the
transaction: a user who wrote in the meantime keeps their draft. Files are
deleted only after the rows naming them are committed, and only when no
other record names the same file (the store is content-addressed). Every
run but a dry one is audited with its counts — never the data.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from peewee import SqliteDatabase, fn

from domain import clock
from domain.log_files import delete_old_logs
from domain.withdrawal import HOLDING_RECORDS, forget_records, years_before
from program import Program
from storage import repo
from storage.db import checkpoints_between_batches, database, serialized_writes
from storage.files import EncryptedFileStore, is_valid_file_id
from storage.models import AuditLog, Dispatch, Expert, LineUser, Outbox, PersonIndex, ProcessedEvent, Report

# Rows per transaction. On SQLite every batch holds the database's one write lock, and a webhook
# waits behind it: deleting 500 event ids held it 13 ms (median; 30 at p90, 48 at most) on a year
# of them, 100 held it 2.4 ms (7, 12) for the same cost per row. PostgreSQL locks only the rows.
BATCH = 500
SQLITE_BATCH = 100
# Event ids outlive the webhook's replay cut-off by this much (LINE's clock may run ahead of ours).
REPLAY_MARGIN = timedelta(days=1)
CLOSED_STATUSES = ("rejected", "withdrawn")
NOTICE_ACTION = "retention.draft_notice"
NOTICE_REASON = "retention_notice"  # the outbox row's reason, for ops


@dataclass
class Purged:
    """What one run removed (a dry run: would remove), per kind."""

    processed_events: int = 0  # webhook event ids
    outbox_rows: int = 0  # closed outbox rows deleted
    outbox_messages: int = 0  # closed rows whose leftover messages were cleared (not deleted: "cleared")
    closed_photos: int = 0  # photo files of rejected / withdrawn applications
    draft_notices: int = 0  # users told their abandoned draft will be deleted
    abandoned_drafts: int = 0  # drafts deleted
    draft_photos: int = 0  # photo files of those drafts
    withdrawn_records: int = 0  # withdrawn experts whose kept name, kana and account were erased
    record_photos: int = 0  # photo files of their reports
    log_files: int = 0
    # The notices' outbox rows, for the caller to queue (not a count: excluded from ``counts``).
    outbox_ids: list[int] = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, int]:
        """Every kind's count, in the order of :data:`KINDS`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "outbox_ids"}

    def summary(self) -> str:
        """``processed_events=3 outbox_rows=0 …``: the audit row's reason and the log line's text."""
        return " ".join(f"{k}={v}" for k, v in self.counts().items())

    @property
    def total(self) -> int:
        return sum(self.counts().values())


KINDS = {  # what each count of :class:`Purged` is, for the operator
    "processed_events": "webhook event ids past processed_event_days (+1 day)",
    "outbox_rows": "closed pushes past outbox_days",
    "outbox_messages": "closed pushes' leftover messages cleared",
    "closed_photos": "photo files of rejected / withdrawn applications past closed_application_photo_days",
    "draft_notices": "users told their unfinished registration will be deleted",
    "abandoned_drafts": "unfinished registrations deleted (abandoned_draft_days, after the notice)",
    "draft_photos": "photo files of those registrations",
    "withdrawn_records": "withdrawn experts' name, kana and bank account kept for the accounts, erased past records_years",
    "record_photos": "photo files of those experts' reports",
    "log_files": "log files past log_days",
}


def purge(program: Program, files: EncryptedFileStore, log_dir: Path | None, now: datetime, dry_run: bool = False,
          *, actor: str = "system", batch: int | None = None) -> Purged:
    """Remove everything kept longer than ``program.retention`` allows, as of ``now``.

    ``now`` is aware, or naive UTC as stored. A dry run only counts.
    Idempotent: a second run at the same ``now`` finds nothing more (beyond
    the notices' deletions, which wait their days)."""
    now = clock.to_utc(now) if now.tzinfo is not None else now
    batch = batch or (SQLITE_BATCH if isinstance(database.obj, SqliteDatabase) else BATCH)
    with checkpoints_between_batches() as between:
        token = _after_batch.set(between)
        try:
            return _purge(program, files, log_dir, now, dry_run, actor, batch)
        finally:
            _after_batch.reset(token)


def _purge(program: Program, files: EncryptedFileStore, log_dir: Path | None, now: datetime, dry_run: bool,
           actor: str, batch: int) -> Purged:
    keep = program.retention
    done = Purged()
    done.processed_events = _processed_events(now - timedelta(days=keep.processed_event_days) - REPLAY_MARGIN,
                                              dry_run, batch)
    done.outbox_rows, done.outbox_messages = _outbox(now - timedelta(days=keep.outbox_days), dry_run, batch)
    done.closed_photos = _closed_photos(files, now - timedelta(days=keep.closed_application_photo_days),
                                        dry_run, batch, actor)
    _abandoned_drafts(program, files, now, dry_run, batch, actor, done)
    done.withdrawn_records, done.record_photos = _withdrawn_records(
        files, years_before(now, keep.records_years), dry_run, batch, actor)
    if log_dir is not None:
        done.log_files = delete_old_logs(Path(log_dir), now, keep.log_days, dry_run)
    if not dry_run:
        with _writing():
            repo.audit(actor, "retention.purge", after=str(done.total), reason=done.summary())
    return done


# What follows each batch's transaction (SQLite: the job's own WAL checkpoint, outside the lock).
_after_batch: ContextVar[Callable[[], None]] = ContextVar("after_batch", default=lambda: None)


@contextmanager
def _writing() -> Iterator[None]:
    """One short write transaction (one batch), then the job's checkpoint with the lock released."""
    with serialized_writes(), database.atomic():
        yield
    _after_batch.get()()


# --- webhook event ids and the outbox ------------------------------------------------------------


def _processed_events(cutoff: datetime, dry_run: bool, batch: int) -> int:
    old = ProcessedEvent.processed_at < cutoff
    if dry_run:
        return int(ProcessedEvent.select().where(old).count())
    removed = 0
    while True:
        ids = _keys(ProcessedEvent.select(ProcessedEvent.webhook_event_id).where(old).limit(batch))
        if not ids:
            return removed
        with _writing():
            removed += ProcessedEvent.delete().where(ProcessedEvent.webhook_event_id.in_(ids) & old).execute()


def _outbox(cutoff: datetime, dry_run: bool, batch: int) -> tuple[int, int]:
    """(closed rows deleted, closed rows' leftover messages cleared). Pending rows are never touched."""
    closed = Outbox.status != "pending"
    old = closed & (Outbox.created_at < cutoff)
    leftover = closed & Outbox.messages.is_null(False) & (Outbox.created_at >= cutoff)
    if dry_run:
        return int(Outbox.select().where(old).count()), int(Outbox.select().where(leftover).count())
    deleted = cleared = 0
    while ids := _ids(Outbox.select(Outbox.id).where(old).order_by(Outbox.id).limit(batch)):
        with _writing():
            deleted += Outbox.delete().where(Outbox.id.in_(ids) & old).execute()
    while ids := _ids(Outbox.select(Outbox.id).where(leftover).order_by(Outbox.id).limit(batch)):
        with _writing():
            cleared += Outbox.update(messages=None).where(Outbox.id.in_(ids) & closed).execute()
    return deleted, cleared


def _ids(query: Any) -> list[int]:
    return [int(r[0]) for r in query.tuples()]


def _keys(query: Any) -> list[str]:
    return [str(r[0]) for r in query.tuples()]


# --- photos ------------------------------------------------------------------------------------------


def photo_ids(document: dict[str, Any] | None) -> set[str]:
    """The file ids of an application's photos (``{"photos": {key: file id}}``) in a draft or profile."""
    photos = (document or {}).get("photos") or {}
    values = photos.values() if isinstance(photos, dict) else photos if isinstance(photos, list) else []
    return {v for v in values if is_valid_file_id(v)}


def _without_photos(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    return {k: v for k, v in document.items() if k != "photos"}


def _experts(where: Any, batch: int) -> Iterator[list[Expert]]:
    """Experts matching ``where``, ``batch`` at a time by increasing id (read outside any transaction)."""
    last = 0
    while True:
        rows = list(Expert.select().where(where & (Expert.id > last)).order_by(Expert.id).limit(batch))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _closed_photos(files: EncryptedFileStore, cutoff: datetime, dry_run: bool, batch: int, actor: str) -> int:
    """Clear the photos of applications closed (rejected / withdrawn) before ``cutoff``; files deleted."""
    closed = Expert.status.in_(CLOSED_STATUSES) & (Expert.updated_at < cutoff)
    candidates: set[str] = set()
    cleared: set[int] = set()
    for rows in _experts(closed, batch):
        with_photos = [e for e in rows if photo_ids(e.draft) | photo_ids(e.profile)]
        if not with_photos:
            continue
        if dry_run:
            cleared.update(e.id for e in with_photos)
            candidates.update(*(photo_ids(e.draft) | photo_ids(e.profile) for e in with_photos))
            continue
        with _writing():
            for expert in with_photos:
                now_row = Expert.get_or_none((Expert.id == expert.id) & closed)  # still closed and untouched?
                if now_row is None:
                    continue
                ids = photo_ids(now_row.draft) | photo_ids(now_row.profile)
                Expert.update(draft=_without_photos(now_row.draft), profile=_without_photos(now_row.profile)) \
                    .where(Expert.id == expert.id).execute()  # updated_at stays: it dates the decision
                repo.audit(actor, "retention.photos_deleted", target=f"expert:{expert.id}", after=str(len(ids)))
                candidates |= ids
                cleared.add(expert.id)
    return _delete_files(files, candidates, skip_experts=cleared if dry_run else set(), dry_run=dry_run)


def _files_in_use(skip_experts: set[int], skip_reports: set[int] | None = None, batch: int = BATCH) -> set[str]:
    """Every file id a record still names: applications' and profiles' photos, reports' photos.

    The store names a file by its content, so two records can share one:
    a file goes only when nothing names it any more."""
    used: set[str] = set()
    for rows in _experts(Expert.id.not_in(list(skip_experts)) if skip_experts else Expert.id > 0, batch):
        for e in rows:
            used |= photo_ids(e.draft) | photo_ids(e.profile)
    for report_id, draft in cast(Iterable[tuple[int, Any]], Report.select(Report.id, Report.draft).tuples()):
        if report_id not in (skip_reports or ()):
            used |= photo_ids(draft)
    return used


def _delete_files(files: EncryptedFileStore, candidates: set[str], *, skip_experts: set[int], dry_run: bool,
                  skip_reports: set[int] | None = None) -> int:
    """Delete (dry run: count) the candidates no record names; ``skip_*``: records a dry run
    would have cleared, so that what they name counts as unnamed."""
    if not candidates:
        return 0
    gone = candidates - _files_in_use(skip_experts, skip_reports)
    if dry_run:
        return sum(1 for f in gone if files.exists(f))
    return sum(1 for f in sorted(gone) if files.delete(f))


# --- abandoned registration drafts ---------------------------------------------------------------


@dataclass
class _Draft:
    expert: Expert
    user: LineUser
    last_activity: datetime  # naive UTC: their last answer or message, whichever is later
    noticed_at: datetime | None  # the notice sent since that activity, if any


def _drafts(before: datetime, batch: int) -> Iterator[list[_Draft]]:
    """Drafts with no answer and no message since ``before``, with the notice each has had.

    Never an expert with a dispatch: a former expert who withdrew and started
    a new application keeps the records their past work is accounted by
    (``domain.withdrawal``), and deleting the row would delete those too."""
    had_work = Dispatch.select(Dispatch.id).where(Dispatch.expert == Expert.id)
    idle = ((Expert.status == "draft") & (Expert.updated_at < before) & (LineUser.updated_at < before)
            & ~fn.EXISTS(had_work))
    last = 0
    while True:
        rows = list(Expert.select(Expert, LineUser).join(LineUser).where(idle & (Expert.id > last))
                    .order_by(Expert.id).limit(batch))
        if not rows:
            return
        last = rows[-1].id
        notices = _notices([f"expert:{e.id}" for e in rows])
        found = []
        for e in rows:
            activity = max(e.updated_at, e.user.updated_at)
            noticed = notices.get(f"expert:{e.id}")
            found.append(_Draft(e, e.user, activity, noticed if noticed and noticed > activity else None))
        yield found


def _notices(targets: list[str]) -> dict[str, datetime]:
    """The latest notice audited for each target."""
    return _latest(AuditLog.action == NOTICE_ACTION, targets)


def _latest(what: Any, targets: list[str]) -> dict[str, datetime]:
    """The time of the latest audit row matching ``what`` for each target that has one."""
    rows = (AuditLog.select(AuditLog.target, fn.MAX(AuditLog.at))
            .where(what & AuditLog.target.in_(targets))
            .group_by(AuditLog.target).tuples())
    return {str(t): _naive(at) for t, at in cast(Iterable[tuple[str, Any]], rows)}


def _naive(value: Any) -> datetime:
    """A DATETIME read through an aggregate: SQLite gives the text back."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return cast(datetime, value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value)


def deletion_time(program: Program, last_activity: datetime, noticed_at: datetime) -> datetime:
    """When a noticed draft may go: its full idle time, and the notice's days after the notice."""
    keep = program.retention
    return max(last_activity + timedelta(days=keep.abandoned_draft_days),
               noticed_at + timedelta(days=keep.abandoned_draft_notice_days))


def notice_text(program: Program, delete_after: datetime) -> str:
    """The push that tells a user their unfinished registration will be deleted, and how to keep it."""
    day = clock.to_local(program.timezone, delete_after)
    return (
        "【専門家登録の入力について】\n"
        "専門家登録の入力が途中のまま、長い間止まっています。\n"
        f"個人情報を必要以上に保管しないため、入力途中の内容（お送りいただいた写真を含む）は"
        f"{day.year}年{clock.day_text(program.timezone, delete_after)}以降に削除します。\n"
        "登録を続ける場合は、それまでに「登録」と送ってください。続きから入力できます。\n"
        "削除後も、「登録」と送れば最初から登録できます。"
    )


def _abandoned_drafts(program: Program, files: EncryptedFileStore, now: datetime, dry_run: bool, batch: int,
                      actor: str, done: Purged) -> None:
    keep = program.retention
    notice_from = now - timedelta(days=max(keep.abandoned_draft_days - keep.abandoned_draft_notice_days, 0))
    doomed_photos: set[str] = set()
    deleted: set[int] = set()
    for drafts in _drafts(notice_from, batch):
        to_tell = [d for d in drafts if d.noticed_at is None]
        due = [d for d in drafts if d.noticed_at is not None
               and deletion_time(program, d.last_activity, d.noticed_at) <= now]
        if dry_run:
            done.draft_notices += len(to_tell)
            done.abandoned_drafts += len(due)
            deleted.update(d.expert.id for d in due)
            for d in due:
                doomed_photos |= photo_ids(d.expert.draft)
            continue
        if to_tell:
            with _writing():
                for d in to_tell:
                    if _still_idle(d) is not None:
                        done.outbox_ids.append(_tell(program, d, now, actor))
                        done.draft_notices += 1
        if due:
            with _writing():
                for d in due:
                    expert = _still_idle(d)
                    if expert is not None and _delete_draft(expert, d.user, actor):
                        doomed_photos |= photo_ids(expert.draft)
                        done.abandoned_drafts += 1
    done.draft_photos = _delete_files(files, doomed_photos, skip_experts=deleted, dry_run=dry_run)


def _still_idle(d: _Draft) -> Expert | None:
    """The draft re-read inside the batch's transaction: None if its user answered or wrote since.

    PostgreSQL: the user's row is locked first, so an event of theirs committing now is waited
    for and seen (SQLite: ``serialized_writes`` already orders us after it)."""
    users = LineUser.select(LineUser.updated_at).where(LineUser.id == d.user.id)
    if getattr(database.obj, "for_update", False):
        users = users.for_update()
    user = users.first()
    expert = Expert.get_or_none((Expert.id == d.expert.id) & (Expert.status == "draft"))
    if user is None or expert is None or max(expert.updated_at, user.updated_at) > d.last_activity:
        return None
    return expert


def _tell(program: Program, d: _Draft, now: datetime, actor: str) -> int:
    """Queue the notice and remember it (an audit row: nothing of the user's is touched)."""
    text = notice_text(program, deletion_time(program, d.last_activity, now))
    row = repo.queue_push(d.user.line_user_id, [{"type": "text", "text": text}], NOTICE_REASON)
    repo.audit(actor, NOTICE_ACTION, target=f"expert:{d.expert.id}")
    return int(row.id)


def _delete_draft(expert: Expert, user: LineUser, actor: str) -> bool:
    """Delete the application row (its blind indexes with it); the user's next session starts afresh."""
    PersonIndex.delete().where(PersonIndex.expert == expert.id).execute()
    if not Expert.delete().where((Expert.id == expert.id) & (Expert.status == "draft")).execute():
        return False
    # A session saved in Redis still points into the form: a new step number makes it stale,
    # so the next message recomputes it from SQL (no application → 「登録」 starts anew).
    LineUser.update(session_rev=LineUser.session_rev + 1).where(LineUser.id == user.id).execute()
    repo.audit(actor, "retention.draft_deleted", target=f"expert:{expert.id}")
    return True


# --- what 退会 kept for the accounts ------------------------------------------------------------------


WITHDRAWAL = (AuditLog.action == "status.change") & (AuditLog.after == "withdrawn")  # domain.withdrawal.withdrawal_entry


def _withdrawn_at(experts: list[Expert]) -> dict[int, datetime]:
    """When each expert withdrew (their latest audited move to ``withdrawn``); a record with no
    such row (written before the audit existed) is dated by its last update, the erasure's."""
    moves = _latest(WITHDRAWAL, [f"expert:{e.id}" for e in experts])
    return {e.id: moves.get(f"expert:{e.id}", e.updated_at) for e in experts}


def _withdrawn_records(files: EncryptedFileStore, cutoff: datetime, dry_run: bool, batch: int,
                       actor: str) -> tuple[int, int]:
    """(experts withdrawn before ``cutoff`` whose kept records were erased, their reports' photo files)."""
    erased: set[int] = set()
    photos: set[str] = set()
    stripped: set[int] = set()  # a dry run's reports that would no longer name their photos
    last = 0
    while True:
        rows = list(Expert.select(Expert.id, Expert.updated_at).where(HOLDING_RECORDS & (Expert.id > last))
                    .order_by(Expert.id).limit(batch))
        if not rows:
            break
        last = rows[-1].id
        due = [eid for eid, at in _withdrawn_at(rows).items() if at < cutoff]
        if not due:
            continue
        if dry_run:
            erased.update(due)
            for report_id, draft in cast(Iterable[tuple[int, Any]], Report.select(Report.id, Report.draft)
                                         .join(Dispatch).where(Dispatch.expert.in_(due)).tuples()):
                photos |= photo_ids(draft)
                stripped.add(report_id)
            continue
        with _writing():
            for eid in due:
                expert = _still_due(eid, cutoff)
                if expert is None:
                    continue
                forgotten = forget_records(expert)
                photos |= {f for f in forgotten.photos if is_valid_file_id(f)}
                erased.add(eid)
                repo.audit(actor, "retention.records_erased", target=f"expert:{eid}",
                           after=str(forgotten.reports + forgotten.exceptions))
    return len(erased), _delete_files(files, photos, skip_experts=set(), skip_reports=stripped, dry_run=dry_run)


def _still_due(expert_id: int, cutoff: datetime) -> Expert | None:
    """The expert re-read inside the batch's transaction: None if they applied again (or withdrew
    again, later) since the batch was read. PostgreSQL: the row is locked against that meanwhile."""
    rows = Expert.select().where((Expert.id == expert_id) & HOLDING_RECORDS)
    if getattr(database.obj, "for_update", False):
        rows = rows.for_update()
    expert: Expert | None = rows.first()
    if expert is None or _withdrawn_at([expert])[expert.id] >= cutoff:
        return None
    return expert
