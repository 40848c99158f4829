"""Seeding for ``bench.scale``: a national-scale program in one fresh database, in bulk.

Why not webhooks: 10,000 experts with 50,000 dispatches would take hours
through the conversation. Why not plain SQL: the rows must be exactly what
the bot writes, or the benchmark measures another program. So the rows go
through the real peewee models (``insert_many`` in chunks: sealed columns
encrypt in ``db_value``, JSON columns serialise as the bot's do) and are
built by the helpers the flows use: the profile is the one
``handlers.demo_seed`` builds (phones by ``domain.validators``, names by
``domain.normalize``, bank fields encrypted and blind-indexed by
``storage.crypto``), ``PersonIndex``/``ExpertArea``/``ExpertField`` rows and
``Expert.index_fp`` come from ``storage.people`` exactly as
``storage.models.reindex`` computes them (the smoke test checks that
``reindex`` then finds nothing to change), fees from ``Program.fee`` and
``Program.fee_month``.

What one size holds (``n`` commissioned experts):

* 500 institutions (both kinds), one reviewer each; three secretariat members;
* ``n`` commissioned experts over the 47 prefectures and the program's
  fields, each with the audit trail of their registration, consent and
  acceptance, and 5 dispatches over the last 12 months (Asia/Tokyo): most
  checked in and out with an accepted report (the fee stored), some reports
  waiting for review, some late (returned, a draft or none: ``/stats`` counts
  them from ``Dispatch.report_due_at``, written here as the status machines
  keep it; /fees's sums, ``FeeTotal``/``FeeMonth``, are filled by the rule
  after), some requests pending, accepted for the coming weeks, or cancelled;
  institution 1 (the measured reviewer's) holds at least 11 upcoming at every
  size, a full page of 依頼一覧 and one more;
  ≈ 41 audit rows per expert, the webhook event ids (``ProcessedEvent``) and
  delivered pushes (``Outbox``) those steps left;
* applications waiting for the institution (1 %) and the secretariat
  (0.5 %), and registrations abandoned half a year ago (0.5 %), so 審査待ち,
  ``/pending`` and ``purge`` have work that grows with the program.

Ids are assigned here (the database is fresh), so foreign keys need no
round trip; on PostgreSQL the sequences are moved past them afterwards.
"""
from __future__ import annotations

import hashlib
import time as _time
from datetime import date, datetime, time, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from peewee import PostgresqlDatabase

from bench.scale_data import (  # noqa: F401  (re-exported: bench.scale imports them from here)
    BANKS,
    DISPATCHES_PER_EXPERT,
    FULL_PAGE_UPCOMING,
    GIVEN,
    INSTITUTIONS,
    MONTHS,
    PIN,
    REPORT_TEXT,
    SECRETARIAT,
    SURNAMES,
    Probe,
    Rows,
    Seeded,
    arm_probes,
    line_id,
    move_sequences,
)
from domain.fee_totals import refill_fee_totals
from domain.normalize import format_name, to_zengin_kana
from domain.validators import PREFECTURES, format_phone_display, parse_phone
from program import Program
from storage import people, repo, sealed
from storage.crypto import last4
from storage.db import database, serialized_writes
from storage.models import (
    ALL_MODELS,
    Attendance,
    AuditLog,
    Business,
    ConditionsConsent,
    Dispatch,
    Expert,
    ExpertArea,
    ExpertField,
    Institution,
    LineUser,
    Outbox,
    PersonIndex,
    ProcessedEvent,
    Report,
    _covered,
)


class _Seeder:
    def __init__(self, program: Program, n: int, now: datetime, chunk: int):
        self.program, self.n, self.now, self.chunk = program, n, now, chunk
        self.crypto = sealed.crypto()
        self.tz = program.timezone
        self.audit = Rows(AuditLog, [AuditLog.id, AuditLog.at, AuditLog.actor, AuditLog.action, AuditLog.target,
                                      AuditLog.before, AuditLog.after, AuditLog.reason, AuditLog.event_id], chunk)
        self.events = Rows(ProcessedEvent, [ProcessedEvent.webhook_event_id, ProcessedEvent.line_user_id,
                                             ProcessedEvent.processed_at], chunk)
        self.outbox = Rows(Outbox, [Outbox.id, Outbox.uuid, Outbox.to, Outbox.messages, Outbox.status,
                                     Outbox.attempts, Outbox.reason, Outbox.created_at, Outbox.sent_at], chunk)
        self.ids: dict[str, int] = {}
        self.reviewers: dict[int, str] = {}
        self.reviewer_pks: dict[int, int] = {}
        self.codes: dict[int, str] = {}
        self.first: tuple[int, str, str] | None = None  # expert 0 (institution 1's): id, LINE id, a field

    def next_id(self, kind: str) -> int:
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return self.ids[kind]

    # --- the trail every step leaves --------------------------------------------------------

    def step(self, at: datetime, actor: str, action: str, target: str | None = None, before: str | None = None,
             after: str | None = None, reason: str | None = None, by_event: bool = True) -> None:
        """An audit row; a step done by a LINE event also leaves that event's id (ProcessedEvent)."""
        event_id = None
        if by_event and actor.startswith("U"):
            event_id = "01" + hashlib.sha256(f"{actor}:{action}:{target}:{at}".encode()).hexdigest()[:24].upper()
            self.events.add(event_id, actor, at)
        self.audit.add(self.next_id("audit"), at, actor, action, target, before, after, reason, event_id)

    def push(self, to: str, reason: str, at: datetime) -> None:
        """A push that went out: the messages were cleared on delivery, the metadata stays."""
        key = hashlib.sha256(f"{to}:{reason}:{at}:{self.ids.get('outbox', 0)}".encode()).hexdigest()
        self.outbox.add(self.next_id("outbox"), f"{key[:8]}-{key[8:12]}-4{key[13:16]}-8{key[17:20]}-{key[20:32]}",
                        to, None, "sent", 1, reason, at, at + timedelta(seconds=1))

    def flush(self) -> None:
        for rows in (self.audit, self.events, self.outbox):
            rows.flush()

    def utc(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(timezone.utc).replace(tzinfo=None)

    # --- people -------------------------------------------------------------------------------

    def staff(self) -> tuple[list[str], list[tuple[int, str]]]:
        institutions, users = [], Rows(LineUser, [LineUser.id, LineUser.line_user_id, LineUser.role,
                                                     LineUser.institution, LineUser.created_at,
                                                     LineUser.updated_at], self.chunk)
        at = self.now - timedelta(days=400)
        codes: set[str] = set()
        for i in range(1, INSTITUTIONS + 1):
            code = repo.new_code()
            while code in codes:
                code = repo.new_code()
            codes.add(code)
            kind = "認定経営革新等支援機関" if i % 3 else "よろず支援拠点"
            institutions.append((i, f"スケール支援機関{i:03d}", kind, code, at))
            self.codes[i] = code
        Institution.insert_many(institutions, fields=[Institution.id, Institution.name, Institution.kind,
                                                      Institution.code, Institution.created_at]).execute()
        secretariat = []
        for i in range(SECRETARIAT):
            uid = line_id("secretariat", i)
            users.add(self.next_id("user"), uid, "secretariat", None, at, at)
            self.step(at, "cli", "role.grant", target=f"user:{self.ids['user']}", after="secretariat", by_event=False)
            secretariat.append(uid)
        for inst in range(1, INSTITUTIONS + 1):
            uid = line_id("reviewer", inst)
            users.add(self.next_id("user"), uid, "reviewer", inst, at, at)
            self.step(at, uid, "role.grant", target=f"user:{self.ids['user']}", after="reviewer")
            self.reviewers[inst] = uid
            self.reviewer_pks[inst] = self.ids["user"]
        users.flush()
        return secretariat, [(i, self.codes[i]) for i in range(1, INSTITUTIONS + 1)]

    def profile(self, i: int, inst: int) -> tuple[dict[str, Any], tuple[str, str, str, str]]:
        """The answers the profile flow would have saved (as ``handlers.demo_seed`` builds them)."""
        family, kana_family = SURNAMES[i % len(SURNAMES)]
        given, kana_given = GIVEN[(i // len(SURNAMES)) % len(GIVEN)]
        bank_code, bank_name, branch_code, branch_name = BANKS[i % len(BANKS)]
        account = f"{i % 10_000_000:07d}"
        phone = parse_phone(f"090-{1000 + (i // 10_000) % 9000}-{i % 10_000:04d}")
        pref = PREFECTURES[i % len(PREFECTURES)]
        areas = sorted({pref, PREFECTURES[(i * 7 + 3) % len(PREFECTURES)]} if i % 3 == 0 else {pref})
        fields = list(self.program.expertise)
        expertise = [fields[i % len(fields)]] + ([fields[(i // 2 + 5) % len(fields)]] if i % 2 else [])
        inst_name = f"スケール支援機関{inst:03d}"
        answers = {
            "terms_version": self.program.terms.version,
            "institution_id": inst,
            "institution_name": inst_name,
            "family_name": family,
            "given_name": given,
            "kana_family": kana_family,
            "kana_given": kana_given,
            "birthdate": f"{1950 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "phone": phone,
            "phone_display": format_phone_display(phone),
            "email": f"expert{i}@example.jp",
            "postal": "100-0005",
            "address": f"{pref}中央区本町{1 + i % 9}-{1 + i % 20}-{1 + i % 30}",
            "qualifications": ["中小企業診断士"],
            "requirements": [],
            "requirements_met": ["a"],
            "expertise": sorted(set(expertise)),
            "areas": areas,
            "bank_code": bank_code,
            "bank_name": bank_name,
            "branch_code": branch_code,
            "branch_name": branch_name,
            "account_type": "普通",
            "account_number_enc": self.crypto.encrypt(account),
            "account_blind": self.crypto.blind_index(bank_code + branch_code + account, "bank-account"),
            "account_last4": last4(account),
            "holder_enc": self.crypto.encrypt(to_zengin_kana(f"{kana_family} {kana_given}")),
        }
        return answers, (family, given, kana_family, kana_given)

    def index_rows(self, names: tuple[str, str, str, str],
                   answers: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[str], list[str]]:
        """The fingerprint and the ``PersonIndex``/``ExpertArea``/``ExpertField`` values, as ``reindex``
        computes them."""
        family, given, kana_family, kana_given = names
        columns = {"family_name": family, "given_name": given, "kana": format_name(kana_family, kana_given)}
        pairs = people.digests(self.crypto, people.tokens(columns, (answers, answers)))
        areas, fields = _covered(SimpleNamespace(profile=answers, draft=answers))  # type: ignore[arg-type]
        fp = people.fingerprint([*pairs, *(("area", a) for a in areas), *(("field", f) for f in fields)])
        return fp, pairs, areas, fields


def _add_index(rows: dict[str, Rows], expert_id: int, pairs: list[tuple[str, str]], areas: list[str],
               fields: list[str]) -> None:
    """After the expert's own row (the foreign keys are checked at once)."""
    for kind, digest in pairs:
        rows["index"].add(expert_id, kind, digest)
    for a in areas:
        rows["area"].add(expert_id, a)
    for f in fields:
        rows["field"].add(expert_id, f)


def _expert_rows(chunk: int) -> dict[str, Rows]:
    user = Rows(LineUser, [LineUser.id, LineUser.line_user_id, LineUser.session_rev, LineUser.created_at,
                            LineUser.updated_at], chunk)
    expert = Rows(Expert, [Expert.id, Expert.user, Expert.status, Expert.institution, Expert.draft,
                            Expert.family_name, Expert.given_name, Expert.kana, Expert.terms_version,
                            Expert.terms_agreed_at, Expert.created_at, Expert.updated_at, Expert.submitted_at,
                            Expert.commission_number, Expert.conditions_version, Expert.conditions_sha256,
                            Expert.conditions_agreed_at, Expert.accepted_at, Expert.account_blind,
                            Expert.profile, Expert.index_fp], chunk, [user])
    business = Rows(Business, [Business.id, Business.institution, Business.name, Business.latitude,
                                Business.longitude, Business.address, Business.created_at], chunk)
    dispatch = Rows(Dispatch, [Dispatch.id, Dispatch.business, Dispatch.institution, Dispatch.expert,
                                Dispatch.requested_by, Dispatch.theme, Dispatch.scheduled_at, Dispatch.status,
                                Dispatch.reason, Dispatch.created_at, Dispatch.updated_at, Dispatch.report_due_at],
                      chunk, [business, expert])
    return {
        "user": user,
        "expert": expert,
        "index": Rows(PersonIndex, [PersonIndex.expert, PersonIndex.kind, PersonIndex.digest], chunk, [expert]),
        "area": Rows(ExpertArea, [ExpertArea.expert, ExpertArea.prefecture], chunk, [expert]),
        "field": Rows(ExpertField, [ExpertField.expert, ExpertField.field], chunk, [expert]),
        "consent": Rows(ConditionsConsent, [ConditionsConsent.expert, ConditionsConsent.version,
                                             ConditionsConsent.sha256, ConditionsConsent.agreed,
                                             ConditionsConsent.event_id, ConditionsConsent.at], chunk, [expert]),
        "business": business,
        "dispatch": dispatch,
        "attendance": Rows(Attendance, [Attendance.dispatch, Attendance.kind, Attendance.line_timestamp,
                                         Attendance.received_at, Attendance.latitude, Attendance.longitude,
                                         Attendance.distance_m, Attendance.flagged, Attendance.flags,
                                         Attendance.event_id], chunk, [dispatch]),
        "report": Rows(Report, [Report.id, Report.dispatch, Report.status, Report.draft, Report.minutes,
                                 Report.gross_yen, Report.withholding_yen, Report.travel_yen, Report.net_yen,
                                 Report.fee_month, Report.submitted_at, Report.accepted_at, Report.accepted_by,
                                 Report.created_at, Report.updated_at, Report.reason], chunk, [dispatch]),
    }


def _months_back(today: date, k: int) -> date:
    """The first day of the month ``k`` months before ``today``'s."""
    y, m = today.year, today.month - k
    while m <= 0:
        y, m = y - 1, m + 12
    return date(y, m, 1)


def seed(program: Program, n: int, *, probes: int = 10, now: datetime | None = None, chunk: int = 1000) -> Seeded:
    """Fill a fresh, migrated database (bound, keys configured) with a program of ``n`` experts."""
    started = _time.perf_counter()
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    s = _Seeder(program, n, now, chunk)
    today = now.replace(tzinfo=timezone.utc).astimezone(program.timezone).date()
    conditions, terms = program.conditions, program.terms
    prefix = program.commission_number_prefix
    with serialized_writes(), database.atomic():
        secretariat, _ = s.staff()
        rows = _expert_rows(chunk)
        month_counts: dict[str, int] = {}
        for i in range(n):
            _one_expert(s, rows, i, today, month_counts, conditions, terms, prefix)
        _a_page_of_upcoming(s, rows, n, today, month_counts)
        _applications(s, rows, n, today)
        for r in rows.values():
            r.flush()
        s.flush()
        refill_fee_totals()  # /fees's sums, as the report machine keeps them: filled by the rule
    move_sequences()
    # What a year of running would have left: PostgreSQL's autovacuum analyzes and (for tables
    # that only grow, since PostgreSQL 13) vacuums, which sets the visibility map index-only
    # scans rely on; SQLite has the bot's daily PRAGMA optimize.
    database.execute_sql("VACUUM ANALYZE" if isinstance(database.obj, PostgresqlDatabase) else "ANALYZE")
    counts = {m.__name__: m.select().count() for m in ALL_MODELS}
    complete = [m for m in sorted(month_counts) if m < f"{today:%Y-%m}"]
    busiest = max(complete or sorted(month_counts), key=lambda m: month_counts[m])
    found = program.expertise[0]
    return Seeded(
        size=n, seconds=_time.perf_counter() - started, counts=counts, institution_code=s.codes[1],
        reviewer=s.reviewers[1], secretariat=secretariat[0],
        probes=[Probe(i + 1, line_id("expert", i), 1 + i % INSTITUTIONS) for i in range(min(probes, n))],
        export_month=busiest, theme=found, prefecture=PREFECTURES[0],
        audit_per_expert=counts["AuditLog"] / max(1, n))


def _one_expert(s: _Seeder, rows: dict[str, Rows], i: int, today: date, month_counts: dict[str, int],
                conditions: Any, terms: Any, prefix: str) -> None:
    """One commissioned expert: the registration's trail, then five dispatches."""
    inst = 1 + i % INSTITUTIONS
    uid = line_id("expert", i)
    user_pk = s.next_id("user")
    expert_id = s.next_id("expert")
    answers, names = s.profile(i, inst)
    family, given, kana_family, kana_given = names
    joined = s.now - timedelta(days=380 - i % 10, minutes=i % 1440)
    submitted = joined + timedelta(hours=1)
    approved = submitted + timedelta(days=2)
    agreed = approved + timedelta(days=1)
    accepted = agreed + timedelta(hours=2)
    rows["user"].add(user_pk, uid, 30, joined, accepted)
    fp, pairs, areas, fields = s.index_rows(names, answers)
    rows["expert"].add(expert_id, user_pk, "commissioned", inst, answers, family, given,
                       format_name(kana_family, kana_given), terms.version, joined, joined, accepted, submitted,
                       f"{prefix}-{s.program.period_start.year}-{expert_id:05d}", conditions.version,
                       conditions.sha256, agreed, accepted, answers["account_blind"], dict(answers), fp)
    _add_index(rows, expert_id, pairs, areas, fields)
    rows["consent"].add(expert_id, conditions.version, conditions.sha256, True, None, agreed)
    target = f"expert:{expert_id}"
    reviewer, sec = s.reviewers[inst], line_id("secretariat", 0)
    s.step(joined, uid, "terms.agreed", target=target, after=terms.version)
    s.step(joined, uid, "draft.institution", target=target, after=str(inst))
    s.step(submitted, uid, "status.change", target=target, before="draft", after="pending_institution")
    s.step(submitted + timedelta(hours=5), reviewer, "status.change", target=target, before="pending_institution",
           after="pending_secretariat")
    s.step(approved, sec, "status.change", target=target, before="pending_secretariat", after="registered")
    s.push(uid, "application_approved", approved)
    s.step(agreed, uid, "conditions.agreed", target=target, after=conditions.version)
    s.step(agreed, uid, "status.change", target=target, before="registered", after="conditions_agreed")
    s.step(agreed, uid, "letter.sent", target=target, after=f"{prefix}-{s.program.period_start.year}-{expert_id:05d}")
    s.step(accepted, uid, "status.change", target=target, before="conditions_agreed", after="commissioned")
    s.step(accepted, uid, "commission.accepted", target=target, after=conditions.version)
    s.step(accepted, "system", "menu.linked", target=target, by_event=False)
    fields_ = answers["expertise"]
    if i == 0:
        s.first = (expert_id, uid, fields_[0])
    businesses = []
    for b in range(2):  # three dispatches to the first business (its free limit), two to the second
        bid = s.next_id("business")
        pref = answers["areas"][0]
        rows["business"].add(bid, inst, f"株式会社スケール{i:05d}-{b + 1}", PIN[0] + (i % 100) * 1e-4,
                             PIN[1] + b * 1e-3, f"{pref}中央区本町{1 + b}-1-1", joined)
        businesses.append(bid)
    for j in range(DISPATCHES_PER_EXPERT):
        _one_dispatch(s, rows, i, j, expert_id, uid, inst, businesses[0 if j < 3 else 1], fields_[j % len(fields_)],
                      today, month_counts)


def _one_dispatch(s: _Seeder, rows: dict[str, Rows], i: int, j: int, expert_id: int, uid: str, inst: int,
                  business: int, theme: str, today: date, month_counts: dict[str, int]) -> None:
    """One dispatch in one of its lives: done and paid, done and waiting, done and its report late
    (returned, a draft, none: 3 in 100 experts), upcoming, pending or cancelled."""
    reviewer = s.reviewers[inst]
    kind = "paid"
    if j == 3 and i % 5 == 0:
        kind = "submitted"
    elif j == 3 and i % 20 in (1, 2, 3):
        kind = ("returned", "draft", "unreported")[i % 20 - 1]
    elif j == 4:
        kind = ("upcoming", "requested", "cancelled", "paid")[i % 4]
    if kind in ("upcoming", "requested"):
        day = today + timedelta(days=1 + (i + j) % 28)
    else:
        first = _months_back(today, (i * DISPATCHES_PER_EXPERT + j) % MONTHS)
        day = first + timedelta(days=(i + j) % 27)
        if day >= today:
            day = today - timedelta(days=1 + (i % 3))
    at = s.utc(day, time(10 + j % 6, 0))
    requested = at - timedelta(days=10)
    did = s.next_id("dispatch")
    target = f"dispatch:{did}"
    status = {"upcoming": "accepted", "requested": "requested", "cancelled": "cancelled"}.get(kind, "completed")
    reason = "日程が合わなくなったため" if kind == "cancelled" else None
    check_in, check_out = at + timedelta(minutes=i % 10), at + timedelta(minutes=125 + i % 10)
    # What the status machines keep (domain.statuses): the check-out time while the report is owed.
    due = check_out if kind in ("returned", "draft", "unreported") else None
    rows["dispatch"].add(did, business, inst, expert_id, s.reviewer_pks[inst], theme, at, status, reason, requested,
                         at + timedelta(hours=3) if status == "completed" else requested + timedelta(days=1), due)
    s.step(requested, reviewer, "dispatch.requested", target=target, after="requested")
    s.push(uid, "dispatch_requested", requested)
    if kind == "requested":
        return
    s.step(requested + timedelta(hours=3), uid, "dispatch.accepted", target=target, before="requested",
           after="accepted")
    if kind == "cancelled":
        s.step(requested + timedelta(days=2), reviewer, "dispatch.cancel", target=target, before="accepted",
               after="cancelled", reason=reason)
        return
    if kind == "upcoming":
        return
    for k, when, dist in (("in", check_in, 20.0 + i % 50), ("out", check_out, 25.0 + i % 40)):
        rows["attendance"].add(did, k, when, when + timedelta(seconds=2), PIN[0] + 1e-4, PIN[1] + (1e-4 if k == "in"
                               else 2e-4), dist, False, [], f"scale-{did}-{k}")
        s.step(when, uid, f"attendance.{k}", target=target, before="accepted" if k == "in" else "checked_in",
               after="checked_in" if k == "in" else "completed")
    if kind == "unreported":
        return
    minutes = 120
    travel = 1200 if i % 2 else 0
    fee = s.program.fee(minutes, travel_yen=travel)
    month = s.program.fee_month(day)
    draft = {**REPORT_TEXT, "minutes": minutes, "travel_yen": travel, "photos": [], "photos_done": True,
             "elapsed_minutes": int((check_out - check_in).total_seconds() // 60)}
    if travel:
        draft["travel_route"] = "東京駅〜事業所（往復・電車）"
    submitted = check_out + timedelta(hours=2)
    report_id = s.next_id("report")
    if kind == "draft":  # opened at check-out, half written, never sent
        rows["report"].add(report_id, did, "draft", {"consultation": REPORT_TEXT["consultation"], "open": True},
                           None, None, None, None, None, None, None, None, None, check_out, check_out, None)
        s.step(check_out, uid, "report.open", target=f"report:{report_id}", after=target)
        return
    accepted_at = submitted + timedelta(days=1) if kind == "paid" else None
    returned = "対面時間の内訳を書いてください。" if kind == "returned" else None
    rows["report"].add(report_id, did, {"paid": "accepted", "submitted": "submitted"}.get(kind, "returned"), draft,
                       fee.minutes, fee.gross_yen, fee.withholding_yen, fee.travel_yen, fee.net_yen, month, submitted,
                       accepted_at, reviewer if accepted_at else None, check_out,
                       accepted_at or submitted + timedelta(days=1 if returned else 0), returned)
    s.step(submitted, uid, "report.submit", target=f"report:{report_id}", before="draft", after="submitted",
           reason=f"gross={fee.gross_yen} net={fee.net_yen} month={month}")
    if returned:
        s.step(submitted + timedelta(days=1), reviewer, "report.return", target=f"report:{report_id}",
               before="submitted", after="returned", reason=returned)
    if accepted_at is not None:
        s.step(accepted_at, reviewer, "report.accept", target=f"report:{report_id}", before="submitted",
               after="accepted")
        s.push(uid, "report_accepted", accepted_at)
        month_counts[month] = month_counts.get(month, 0) + 1


def _a_page_of_upcoming(s: _Seeder, rows: dict[str, Rows], n: int, today: date, month_counts: dict[str, int]) -> None:
    """依頼一覧 shows 10 cards a page: the measured reviewer's institution (1) holds more than a
    page of upcoming dispatches at every size, so its ratio compares a full carousel with a full
    carousel — at 10 experts it had 1 card against 10 at 1,000 and 10,000 (0.5 ms a card)."""
    assert s.first is not None
    have = len(range(0, n, INSTITUTIONS))  # institution 1's experts, i = 0, 500, …: each one's fifth is upcoming
    expert_id, uid, theme = s.first
    for k in range(max(0, FULL_PAGE_UPCOMING - have)):
        bid = s.next_id("business")
        rows["business"].add(bid, 1, f"株式会社スケール追加{k + 1:02d}", PIN[0], PIN[1] + 2e-3, "東京都中央区本町3-1-1",
                             s.now)
        _one_dispatch(s, rows, 0, 4, expert_id, uid, 1, bid, theme, today, month_counts)


def _applications(s: _Seeder, rows: dict[str, Rows], n: int, today: date) -> None:
    """Applications waiting for review, and registrations abandoned half a year ago."""
    plan = ([("pending_institution", k) for k in range(max(2, n // 100))]
            + [("pending_secretariat", k) for k in range(max(1, n // 200))]
            + [("draft", k) for k in range(max(1, n // 200))])
    for status, k in plan:
        i = 1_000_000 + s.ids.get("expert", 0)  # numbers no commissioned expert uses
        inst = 1 + k % INSTITUTIONS
        uid = line_id(f"applicant-{status}", k)
        user_pk, expert_id = s.next_id("user"), s.next_id("expert")
        answers, names = s.profile(i, inst)
        family, given, kana_family, kana_given = names
        when = s.now - (timedelta(days=200) if status == "draft" else timedelta(days=1 + k % 20))
        rows["user"].add(user_pk, uid, 20, when, when)
        if status == "draft":  # half-filled: no names submitted yet
            partial = {key: answers[key] for key in ("terms_version", "institution_id", "institution_name",
                                                     "family_name", "given_name")}
            rows["expert"].add(expert_id, user_pk, "draft", inst, partial, None, None, None, s.program.terms.version,
                               when, when, when, None, None, None, None, None, None, None, None, None)
            s.step(when, uid, "terms.agreed", target=f"expert:{expert_id}", after=s.program.terms.version)
            continue
        fp, pairs, areas, fields = s.index_rows(names, answers)
        rows["expert"].add(expert_id, user_pk, status, inst, answers, family, given,
                           format_name(kana_family, kana_given), s.program.terms.version, when, when, when, when,
                           None, None, None, None, None, answers["account_blind"], None, fp)
        _add_index(rows, expert_id, pairs, areas, fields)
        s.step(when, uid, "status.change", target=f"expert:{expert_id}", before="draft", after="pending_institution")
        if status == "pending_secretariat":
            s.step(when, s.reviewers[inst], "status.change", target=f"expert:{expert_id}",
                   before="pending_institution", after="pending_secretariat")
