"""Records in SQL: users and roles, institutions, experts, audit, outbox.

Redis holds where a user is in a conversation; these tables hold everything
the user said and everything that happened. Every status change is paired
with an ``AuditLog`` row, and every push caused by it with an ``Outbox``
row, in the same transaction.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from storage import people, sealed
from storage.db import database
from storage.sealed import SealedJSON, SealedText


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class JSONField(TextField):
    """JSON in a text column: portable between SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(Model):
    class Meta:
        database = database
        # Save only the fields that changed: a draft answer rewrites one
        # column, not the whole row.
        only_save_dirty = True


class SchemaVersion(BaseModel):
    """One row per applied migration; ``init-db`` applies what is missing."""

    version = IntegerField(primary_key=True)
    applied_at = DateTimeField(default=utcnow)


class Institution(BaseModel):
    """A support institution; ``code`` is reusable and handed to experts."""

    id = AutoField()
    name = CharField(max_length=200, unique=True)
    kind = CharField(max_length=40)  # 認定経営革新等支援機関 / よろず支援拠点
    code = CharField(max_length=16, unique=True)
    created_at = DateTimeField(default=utcnow)


class LineUser(BaseModel):
    """A LINE account that talks to the bot. Roles are rows, never guessed from text.

    ``session_rev`` increases with every conversation step committed to SQL;
    the Redis session carries the same number, so a session that missed a
    write (Redis failed after the commit) is detected and recomputed from
    the draft instead of trusted.
    """

    id = AutoField()
    line_user_id = CharField(max_length=64, unique=True)
    role = CharField(max_length=20, null=True, index=True)  # expert / reviewer / secretariat
    institution = ForeignKeyField(Institution, null=True, backref="staff", on_delete="SET NULL")
    following = BooleanField(default=True)
    session_rev = IntegerField(default=0)
    # LINE's timestamp (ms) of the latest event applied: an event older than it
    # arrived late (reordered in transit) and is never taken as the current answer.
    last_event_ms = BigIntegerField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class Expert(BaseModel):
    """An expert's application and record.

    ``draft`` holds every answer as it is given (so nothing typed is lost if
    the session store is lost); the columns hold what was submitted. The
    answers, the approved profile and the name columns are sealed
    (``storage.sealed``); ``PersonIndex`` is how they are found.
    """

    id = AutoField()
    user = ForeignKeyField(LineUser, unique=True, backref="expert", on_delete="CASCADE")
    status = CharField(max_length=32, default="draft", index=True)
    institution = ForeignKeyField(Institution, null=True, backref="experts", on_delete="SET NULL")
    draft = SealedJSON(default=dict)
    family_name = SealedText(null=True)
    given_name = SealedText(null=True)
    kana = SealedText(null=True)
    terms_version = CharField(max_length=40, null=True)
    terms_agreed_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # v2: review and commission
    submitted_at = DateTimeField(null=True)
    returned_by = CharField(max_length=20, null=True)  # institution / secretariat
    status_reason = TextField(null=True)  # the last return/reject reason, verbatim
    commission_number = CharField(max_length=32, null=True, unique=True)
    conditions_version = CharField(max_length=40, null=True)
    conditions_sha256 = CharField(max_length=64, null=True)
    conditions_agreed_at = DateTimeField(null=True)
    accepted_at = DateTimeField(null=True)
    accepted_event_id = CharField(max_length=64, null=True)
    account_blind = CharField(max_length=64, null=True, index=True)
    # v3: the answers in force (copied from ``draft`` when an application or
    # a change request is approved). ``draft`` is always the working copy.
    profile = SealedJSON(null=True)
    # v7: the fingerprint of the expert's blind-index rows (PersonIndex), so
    # an answer that changes no name, phone or e-mail rewrites nothing.
    index_fp = CharField(max_length=32, null=True)

    def save(self, *args: Any, **kwargs: Any) -> int:
        rows: int = super().save(*args, **kwargs)
        reindex(self)
        return rows


class PersonIndex(BaseModel):
    """Keyed HMACs of an expert's name, kana, phone and e-mail tokens (``storage.people``)."""

    id = AutoField()
    expert = ForeignKeyField(Expert, backref="index_rows", on_delete="CASCADE")
    kind = CharField(max_length=8)  # name / phone / email
    digest = CharField(max_length=64)

    class Meta:
        indexes = ((("kind", "digest"), False),)


class ExpertArea(BaseModel):
    """A prefecture the expert covers, in force (the approved profile, else the application).

    Plain on purpose: experts are matched to a business by it, in SQL,
    without decrypting anyone's profile (which is sealed as a whole)."""

    id = AutoField()
    expert = ForeignKeyField(Expert, backref="area_rows", on_delete="CASCADE")
    prefecture = CharField(max_length=8)

    class Meta:
        indexes = ((("prefecture", "expert"), True),)


class ExpertField(BaseModel):
    """A field of expertise (専門分野) the expert covers, in force; plain for the same reason."""

    id = AutoField()
    expert = ForeignKeyField(Expert, backref="field_rows", on_delete="CASCADE")
    field = CharField(max_length=40)

    class Meta:
        indexes = ((("field", "expert"), True),)


def _covered(expert: Expert) -> tuple[list[str], list[str]]:
    """The prefectures and fields in force: the approved profile's, else the application's."""
    answers = expert.profile or expert.draft or {}
    areas = sorted({str(a) for a in answers.get("areas") or [] if a})
    fields = sorted({str(f) for f in answers.get("expertise") or [] if f})
    return areas, fields


def reindex(expert: Expert) -> None:
    """Bring the expert's ``PersonIndex``, ``ExpertArea`` and ``ExpertField`` rows in line with
    their answers (a no-op when unchanged: one fingerprint covers all three)."""
    if expert.id is None:
        return
    columns = {"family_name": expert.family_name, "given_name": expert.given_name, "kana": expert.kana}
    pairs = people.digests(sealed.crypto(), people.tokens(columns, (expert.draft, expert.profile)))
    areas, fields = _covered(expert)
    fp = people.fingerprint([*pairs, *(("area", a) for a in areas), *(("field", f) for f in fields)])
    if fp == expert.index_fp:
        return
    PersonIndex.delete().where(PersonIndex.expert == expert.id).execute()
    if pairs:
        PersonIndex.insert_many([(expert.id, kind, d) for kind, d in pairs],
                                fields=[PersonIndex.expert, PersonIndex.kind, PersonIndex.digest]).execute()
    ExpertArea.delete().where(ExpertArea.expert == expert.id).execute()
    if areas:
        ExpertArea.insert_many([(expert.id, a) for a in areas], fields=[ExpertArea.expert, ExpertArea.prefecture]).execute()
    ExpertField.delete().where(ExpertField.expert == expert.id).execute()
    if fields:
        ExpertField.insert_many([(expert.id, f) for f in fields], fields=[ExpertField.expert, ExpertField.field]).execute()
    Expert.update(index_fp=fp).where(Expert.id == expert.id).execute()
    expert.index_fp = fp
    expert._dirty.discard("index_fp")  # type: ignore[attr-defined]  # peewee's per-instance dirty set has no stub


class ChangeRequest(BaseModel):
    """A change of profile or bank account after approval, re-reviewed by the institution.

    The approved data (``Expert.profile``) stays in force until it is approved.
    """

    id = AutoField()
    expert = ForeignKeyField(Expert, backref="changes", on_delete="CASCADE")
    status = CharField(max_length=16, default="pending", index=True)  # pending / approved / returned
    changed = SealedJSON(default=list)  # [[label, old, new], …] as shown to the reviewer
    bank_changed = BooleanField(default=False)
    reason = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    decided_at = DateTimeField(null=True)
    decided_by = CharField(max_length=64, null=True)


class ConditionsConsent(BaseModel):
    """Every answer to the commission conditions: text version, hash, time, event."""

    id = AutoField()
    expert = ForeignKeyField(Expert, backref="consents", on_delete="CASCADE")
    version = CharField(max_length=40)
    sha256 = CharField(max_length=64)
    agreed = BooleanField()
    reason = TextField(null=True)
    event_id = CharField(max_length=64, null=True)
    at = DateTimeField(default=utcnow)


class Business(BaseModel):
    """A business that receives dispatches (the free-dispatch limit counts per business).

    Identified by its 法人番号 when given, else by the institution's own
    record (reviewers pick an existing business or create one). The
    location is a LINE location pin: no geocoding service is assumed, the
    pin is the truth.
    """

    id = AutoField()
    institution = ForeignKeyField(Institution, backref="businesses", on_delete="CASCADE")
    name = CharField(max_length=200)
    corporate_number = CharField(max_length=13, null=True, unique=True)
    latitude = DoubleField()
    longitude = DoubleField()
    address = CharField(max_length=300, null=True)
    created_at = DateTimeField(default=utcnow)


class Dispatch(BaseModel):
    """One dispatch of an expert to a business (支援依頼 → 受諾 → check-in/out → report)."""

    id = AutoField()
    business = ForeignKeyField(Business, backref="dispatches", on_delete="CASCADE")
    institution = ForeignKeyField(Institution, backref="dispatches", on_delete="CASCADE")
    expert = ForeignKeyField(Expert, backref="dispatches", on_delete="CASCADE")
    requested_by = ForeignKeyField(LineUser, backref="requested_dispatches", on_delete="CASCADE")
    theme = CharField(max_length=100)
    scheduled_at = DateTimeField()  # UTC, naive; lists are newest first (indexes below)
    # requested / accepted / declined / cancelled / checked_in / completed
    status = CharField(max_length=16, default="requested", index=True)
    reason = TextField(null=True)  # decline or cancel reason
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # v10: UTC, naive: the check-out time while the dispatch is completed and its report is not sent
    # (none yet, or a draft, or returned); NULL otherwise. Kept by the status machines
    # (``domain.statuses``): the reports late are one range of this index, not a join of three tables.
    report_due_at = DateTimeField(null=True, index=True)


    class Meta:
        # /dispatches [status]: newest first, read in order from an index (v14: the id breaks the
        # ties of dispatches at the same hour, which PostgreSQL otherwise read whole and sorted).
        indexes = ((("scheduled_at", "id"), False), (("status", "scheduled_at", "id"), False))

class Attendance(BaseModel):
    """A check-in or check-out: LINE's timestamp and our receive time, the pin, the distance.

    ``flags`` lists what the secretariat should look at (pin exactly on the
    business point, identical in/out points, a check long after its event
    time, out of range after three tries).
    """

    id = AutoField()
    dispatch = ForeignKeyField(Dispatch, backref="attendances", on_delete="CASCADE")
    kind = CharField(max_length=4)  # in / out
    line_timestamp = DateTimeField()  # UTC, naive: the event's own time
    received_at = DateTimeField(default=utcnow)
    latitude = DoubleField()
    longitude = DoubleField()
    distance_m = DoubleField()
    flagged = BooleanField(default=False)
    flags = JSONField(default=list)
    event_id = CharField(max_length=64, unique=True)


class ExceptionReport(BaseModel):
    """Filed after three check-ins/outs beyond the radius: the expert's reason, for the secretariat."""

    id = AutoField()
    dispatch = ForeignKeyField(Dispatch, backref="exceptions", on_delete="CASCADE")
    kind = CharField(max_length=4)  # in / out
    reason = TextField()
    distances = JSONField(default=list)
    created_at = DateTimeField(default=utcnow)


class Report(BaseModel):
    """支援実施報告書: one per dispatch; the fee is computed and stored on submission."""

    id = AutoField()
    dispatch = ForeignKeyField(Dispatch, backref="reports", unique=True, on_delete="CASCADE")
    status = CharField(max_length=16, default="draft", index=True)  # draft / submitted / returned / accepted
    draft = JSONField(default=dict)
    minutes = IntegerField(null=True)
    gross_yen = IntegerField(null=True)
    withholding_yen = IntegerField(null=True)
    travel_yen = IntegerField(null=True)
    net_yen = IntegerField(null=True)
    fee_month = CharField(max_length=7, null=True, index=True)
    reason = TextField(null=True)
    submitted_at = DateTimeField(null=True)
    accepted_at = DateTimeField(null=True)
    accepted_by = CharField(max_length=64, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("fee_month", "status"), False),  # a month's accepted reports: /fees and the exports
                   (("status", "id"), False))  # /reports <status>: newest first, from the index


class _FeeSums(BaseModel):
    """Sums of accepted reports (v12), kept by the report machine; the rules: ``storage.fee_sums``."""

    n = IntegerField(default=0)  # reports
    gross_yen = BigIntegerField(default=0)
    withholding_yen = BigIntegerField(default=0)
    travel_yen = BigIntegerField(default=0)
    net_yen = BigIntegerField(default=0)


class FeeTotal(_FeeSums):
    """One expert's accepted reports of one fee month, summed: a /fees page is 20 of these rows."""

    id = AutoField()
    fee_month = CharField(max_length=7)
    expert = ForeignKeyField(Expert, backref="fee_totals", on_delete="CASCADE")

    class Meta:
        indexes = ((("fee_month", "expert"), True),)


class FeeMonth(_FeeSums):
    """One fee month's accepted reports, summed, and the experts they pay: /fees's totals and count."""

    fee_month = CharField(max_length=7, primary_key=True)
    experts = IntegerField(default=0)


class StatusCount(BaseModel):
    """How many experts or dispatches are in one status (v13): /stats reads these few rows, not
    50,000. Kept by triggers on the two tables (``storage.status_counts``), so no path that
    inserts, moves or deletes a row can forget them."""

    kind = CharField(max_length=16)  # the table: "expert" / "dispatch"
    status = CharField(max_length=32)
    n = IntegerField(default=0)

    class Meta:
        primary_key = CompositeKey("kind", "status")


class AuditLog(BaseModel):
    """Who did what to which record, when, and why. A table, not a log file."""

    id = AutoField()
    at = DateTimeField(default=utcnow, index=True)
    actor = CharField(max_length=64)  # LINE user id, "cli" or "system"
    action = CharField(max_length=64)
    target = CharField(max_length=64, null=True)  # e.g. "expert:12"
    before = CharField(max_length=64, null=True)
    after = CharField(max_length=64, null=True)
    reason = TextField(null=True)
    event_id = CharField(max_length=64, null=True)

    class Meta:
        # "who was already told about this version" and the per-record history are looked up
        # by action and target: 410,000 rows at national scale must not be scanned for them.
        indexes = ((("action", "target"), False),
                   (("action", "id"), False))  # the latest entries of an action (/dispatches' limit refusals)


class Outbox(BaseModel):
    """A push to deliver. Written in the transaction that caused it.

    ``uuid`` is sent as ``X-Line-Retry-Key`` so LINE itself refuses a
    second delivery (409) if the worker retries after a lost response.
    """

    id = AutoField()
    uuid = CharField(max_length=36, unique=True, default=lambda: str(uuid.uuid4()))
    to = CharField(max_length=64)  # one LINE user id, or MULTICAST with ``recipients``
    # A multicast: a JSON list of up to 500 LINE user ids, one API call for all of them
    # (the same messages to every expert: a conditions announcement).
    recipients = TextField(null=True)
    # The rendered messages, sealed, and only until delivered or failed for
    # good: then cleared (None), leaving the metadata for ops.
    messages = SealedJSON(null=True)
    status = CharField(max_length=16, default="pending", index=True)  # pending / sent / failed / blocked
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    reason = CharField(max_length=64, null=True)  # what caused it, for ops
    created_at = DateTimeField(default=utcnow, index=True)
    sent_at = DateTimeField(null=True)


class ProcessedEvent(BaseModel):
    """The permanent guard against a second run of a webhook event.

    Redis dedupes quickly for three days; this UNIQUE column is inserted in
    the same transaction as the event's writes, so even a redelivery after
    Redis lost its keys cannot write twice.
    """

    webhook_event_id = CharField(max_length=64, primary_key=True)
    line_user_id = CharField(max_length=64, null=True)
    processed_at = DateTimeField(default=utcnow, index=True)  # the retention purge deletes by age


class OneTimeCode(BaseModel):
    """Invitation codes: secretariat invites and reviewer registration codes."""

    id = AutoField()
    code = CharField(max_length=32, unique=True)
    purpose = CharField(max_length=20)  # secretariat / reviewer
    institution = ForeignKeyField(Institution, null=True, on_delete="CASCADE")
    expires_at = DateTimeField()
    used_by = CharField(max_length=64, null=True)
    used_at = DateTimeField(null=True)
    created_by = CharField(max_length=64)
    created_at = DateTimeField(default=utcnow)


class FlowDraft(BaseModel):
    """What a user has answered so far in a flow whose answers have no record
    of their own yet (a 支援依頼 being typed): Redis holds the position, SQL
    the data, so a lost session loses nothing the user gave."""

    id = AutoField()
    user = ForeignKeyField(LineUser, backref="flow_drafts", on_delete="CASCADE")
    flow = CharField(max_length=64)
    state = CharField(max_length=64)
    data = SealedJSON(default=dict)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "flow"), True),)


ALL_MODELS: list[type[Model]] = [
    SchemaVersion,
    Institution,
    LineUser,
    Expert,
    PersonIndex,
    ExpertArea,
    ExpertField,
    AuditLog,
    Outbox,
    ProcessedEvent,
    OneTimeCode,
    ConditionsConsent,
    ChangeRequest,
    Business,
    Dispatch,
    Attendance,
    ExceptionReport,
    Report,
    FeeTotal,
    FeeMonth,
    StatusCount,
    FlowDraft,
]
