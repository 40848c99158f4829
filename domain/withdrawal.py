"""退会: which of an expert's personal data is erased, and what the accounts keep.

Why anything is kept: the fees, the 全銀 transfer data and the reports of
completed dispatches are accounting records, kept for
``program.retention.records_years`` years after 退会. To pay and account for
them, the name, the kana and the bank account the 全銀 file needs must stay
— sealed, in ``Expert.profile`` — and nothing else does: phone, e-mail,
birth date, address, qualifications, requirements, photos and the working
draft go at once, and with them the blind-index rows of the phone and the
e-mail (``Expert.save`` reindexes). An expert with no such record keeps no
name either: the record is anonymised (「退会者」).

Once ``records_years`` have passed since 退会, the accounts need the payee
no more: the retention purge (``domain.retention``) calls
:func:`forget_records`, and what was kept goes too — the name, kana and
bank account, every blind-index row, and what the dispatches' reports and
exception reports hold of the expert (the travel route, the photos, the
reason given for a check far from the business). The rows stay for the
totals: amounts, minutes, months, statuses and dates are no one's personal
data once the record is 「退会者」.

Nothing here talks to anyone: ``conversations.rights.withdrawal`` moves the
status, cancels the pending dispatches and tells the people concerned.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.status_machine import IllegalTransition
from domain.statuses import CHANGE, DISPATCH_BEFORE_CHECK_IN, REPORT_EDITABLE
from storage.files import EncryptedFileStore
from storage.models import (
    AuditLog,
    ChangeRequest,
    Dispatch,
    ExceptionReport,
    Expert,
    FlowDraft,
    PersonIndex,
    Report,
    utcnow,
)

# What pays and accounts for a completed dispatch (domain.exports reads these), and
# the institution it went through: the profile keeps these keys and no other.
KEPT_FOR_RECORDS = (
    "family_name", "given_name", "kana_family", "kana_given", "institution_name",
    "bank_code", "bank_name", "branch_code", "branch_name", "account_type",
    "account_number_enc", "account_last4", "holder_enc",
)
ANONYMOUS = "退会者"  # the name column of a withdrawn expert with no records
ERASED = "（削除済み）"  # what a change request shows of an erased value
RECORD_DISPATCHES = ("checked_in", "completed")  # a fee is owed or paid: the accounts need the payee
CHANGE_CLOSED_REASON = "専門家の退会"
# What a report holds of the expert rather than of the support: the route they travelled
# (from near their home) and the photos. Forgotten with the rest after ``records_years``.
REPORT_PERSONAL_KEYS = ("travel_route", "photos")
# Withdrawn and still holding what was kept for the accounts (one withdrawn with no records
# was anonymised at once: 「退会者」, with no given name, kana, account or profile).
HOLDING_RECORDS = (Expert.status == "withdrawn") & (
    Expert.profile.is_null(False) | Expert.given_name.is_null(False) | Expert.kana.is_null(False)
    | Expert.account_blind.is_null(False))


@dataclass(frozen=True)
class Erased:
    """What one erasure did: whether records kept the name and account, how many photo files went."""

    kept_records: bool
    photos_deleted: int


def has_records(expert: Expert) -> bool:
    """A dispatch checked in or completed, or any report: the accounts still need the payee."""
    return (Dispatch.select().where((Dispatch.expert == expert.id) & Dispatch.status.in_(RECORD_DISPATCHES)).exists()
            or Report.select().join(Dispatch).where(Dispatch.expert == expert.id).exists())


def pending_dispatches(expert: Expert) -> list[Dispatch]:
    """Requested or accepted, not yet begun: cancelled on 退会."""
    return list(Dispatch.select().where((Dispatch.expert == expert.id) & Dispatch.status.in_(DISPATCH_BEFORE_CHECK_IN))
                .order_by(Dispatch.scheduled_at, Dispatch.id))


def dispatches_in_progress(expert: Expert) -> list[Dispatch]:
    """Checked in and not out: the expert is at a business right now."""
    return list(Dispatch.select().where((Dispatch.expert == expert.id) & (Dispatch.status == "checked_in"))
                .order_by(Dispatch.id))


def unsent_reports(expert: Expert) -> list[int]:
    """Numbers of completed dispatches whose report is not (again) sent: it cannot be after 退会."""
    done = Dispatch.select(Dispatch.id).where((Dispatch.expert == expert.id) & (Dispatch.status == "completed"))
    sent = {r.dispatch_id for r in Report.select(Report.dispatch).where(  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        Report.dispatch.in_(done) & Report.status.not_in(REPORT_EDITABLE))}
    return [d.id for d in done.order_by(Dispatch.id) if d.id not in sent]


def withdrawal_entry(expert: Expert) -> AuditLog | None:
    """The audited move to ``withdrawn`` (when, by whom, why); the latest one."""
    entry: AuditLog | None = (AuditLog.select().where(
        (AuditLog.action == "status.change") & (AuditLog.target == f"expert:{expert.id}")
        & (AuditLog.after == "withdrawn")).order_by(AuditLog.id.desc()).first())
    return entry


def _photo_ids(answers: Iterable[dict[str, Any] | None]) -> set[str]:
    return {str(file_id) for data in answers if data for file_id in (data.get("photos") or {}).values() if file_id}


def _photos_of_others(expert: Expert) -> set[str]:
    """Files are named by their content: the same picture sent by someone else is the same file."""
    others = Expert.select(Expert.id, Expert.draft, Expert.profile).where(Expert.id != expert.id)
    return _photo_ids(answers for other in others for answers in (other.draft, other.profile))


def close_changes(expert: Expert, actor: str, event_id: str | None) -> None:
    """A change request still pending is returned (its approval would overwrite what the
    accounts keep); every request's values are erased, its labels (what changed) stay."""
    for change in ChangeRequest.select().where(ChangeRequest.expert == expert.id):
        if change.status == "pending":
            try:
                CHANGE.move(change, "return", actor=actor, reason=CHANGE_CLOSED_REASON, event_id=event_id,
                            changes={"decided_at": utcnow(), "decided_by": actor, "reason": CHANGE_CLOSED_REASON})
            except IllegalTransition:  # decided meanwhile (the machine audited it)
                pass
        change.changed = [[row[0], ERASED, ERASED] for row in change.changed or []]
        change.save()


def erase(expert: Expert, files: EncryptedFileStore | None) -> Erased:
    """Erase the expert's personal data, keeping only what the accounts need (see the module).

    The photo files go last: should the transaction roll back afterwards, LINE's
    redelivery runs the withdrawal again, and a file already gone is no error.
    """
    keep = has_records(expert)
    photos = _photo_ids([expert.draft, expert.profile])
    in_force = expert.profile or {}
    expert.draft = {}
    if keep:
        expert.profile = {key: in_force[key] for key in KEPT_FOR_RECORDS if key in in_force}
    else:
        anonymise(expert)
    expert.updated_at = utcnow()
    expert.save()  # reindexes: the phone and e-mail rows go with the answers
    FlowDraft.delete().where(FlowDraft.user == expert.user_id).execute()  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    deleted = 0
    if files is not None and photos:
        deleted = sum(files.delete(file_id) for file_id in sorted(photos - _photos_of_others(expert)))
    return Erased(kept_records=keep, photos_deleted=deleted)


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` earlier (29 February: the 28th): a withdrawal before
    ``years_before(now, records_years)`` is past the time the accounts keep its records."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def anonymise(expert: Expert) -> None:
    """No answers, name, kana or account left on the row (saved by the caller): 「退会者」."""
    expert.draft = {}
    expert.profile = None
    expert.family_name, expert.given_name, expert.kana, expert.account_blind = ANONYMOUS, None, None, None


@dataclass(frozen=True)
class Forgotten:
    """What :func:`forget_records` did: reports and exception reports cleared, the photo files they named."""

    reports: int
    exceptions: int
    photos: frozenset[str]


def _report_photos(draft: dict[str, Any]) -> set[str]:
    photos = draft.get("photos") or []
    values = photos.values() if isinstance(photos, dict) else photos if isinstance(photos, list) else []
    return {str(v) for v in values if v}


def forget_records(expert: Expert) -> Forgotten:
    """``records_years`` after 退会: what was kept for the accounts goes too (see the module).

    Runs inside the caller's transaction; the photo files are the caller's to delete once
    it has committed (and only those no other record names: the store is content-addressed)."""
    anonymise(expert)
    expert.save()  # updated_at stays: it dates the withdrawal
    # Not even 「退会者」's row: nothing of this person is searchable any more (a later save,
    # e.g. a new application on the same record, indexes again from what it then holds).
    PersonIndex.delete().where(PersonIndex.expert == expert.id).execute()
    Expert.update(index_fp=None).where(Expert.id == expert.id).execute()
    expert.index_fp = None
    photos: set[str] = set()
    reports = 0
    for report in Report.select().join(Dispatch).where(Dispatch.expert == expert.id).order_by(Report.id):
        draft = report.draft or {}
        if not any(key in draft for key in REPORT_PERSONAL_KEYS):
            continue
        photos |= _report_photos(draft)
        report.draft = {k: v for k, v in draft.items() if k not in REPORT_PERSONAL_KEYS}
        report.save()  # its amounts, month, status and dates stay: they are the accounts' totals
        reports += 1
    theirs = Dispatch.select(Dispatch.id).where(Dispatch.expert == expert.id)
    exceptions = int(ExceptionReport.update(reason=ERASED)
                     .where(ExceptionReport.dispatch.in_(theirs) & (ExceptionReport.reason != ERASED)).execute())
    return Forgotten(reports=reports, exceptions=exceptions, photos=frozenset(photos))
