"""/stats's late reports come from ``Dispatch.report_due_at``, which the status machines keep:
after every step of a dispatch's life, through the webhook as LINE sends it, the maintained
count is the count by the rule itself (``late_reports_by_scan``) and the number expected.

And a database from before the column (v10) gets it filled by the same rule.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone

from playhouse.migrate import SchemaMigrator

from bench.common import ROOT
from domain import stats
from domain.statuses import REPORT_EDITABLE
from program import load_program
from storage import repo
from storage.db import database as db_proxy
from storage.migrations import LATEST, V10_REPORT_UNSENT, _v10_report_due, apply_migrations
from storage.models import Attendance, Dispatch, Expert, Report, SchemaVersion
from tests.actors import (
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    near,
    secretariat,
    send_location,
    tap,
)
from tests.test_reports import ANSWERS


def late(bot_app) -> int:
    """The late reports, maintained and by the rule: always the same number."""
    program = bot_app.rt.program
    maintained, scanned = stats.late_reports(program), stats.late_reports_by_scan(program)
    assert maintained == scanned, (maintained, scanned)
    assert f"提出が遅れている報告書：{maintained}件" in bot_app.text(SEC, "/stats")[0]
    return maintained


def business_time(bot_app, at: datetime) -> None:
    """Days go by: the bot's clock (business time, so the reminders' line) and LINE's (the events'
    timestamps) both moved to ``at`` (UTC, naive)."""
    offset = at.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, clock=lambda: datetime.now(timezone.utc) + offset)
    bot_app.line.set_clock_offset(offset.total_seconds())


def due_at(d: Dispatch) -> datetime | None:
    return Dispatch.get_by_id(d.id).report_due_at


def test_late_reports_follow_check_out_submit_return_resubmit_and_accept(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "統計商工会", REVIEWER)
    expert = commissioned_expert(inst)
    d = dispatch_for(expert, REVIEWER)  # accepted, in a few minutes (today in Tokyo)
    assert late(bot_app) == 0 and due_at(d) is None

    bot_app.text(EXPERT, "チェックイン")
    start_ms = int(time.time() * 1000)
    texts, _ = send_location(bot_app, EXPERT, near(40), start_ms)
    assert "チェックインしました" in texts[0]
    assert late(bot_app) == 0 and due_at(d) is None

    bot_app.text(EXPERT, "チェックアウト")
    out_ms = start_ms + 130 * 60 * 1000
    texts, _ = send_location(bot_app, EXPERT, near(35, 90), out_ms)
    assert "チェックアウトしました" in texts[0] and "支援実施報告書の入力を始めます" in texts[1]
    checked_out = Attendance.get((Attendance.dispatch == d) & (Attendance.kind == "out")).line_timestamp
    report = Report.get()
    assert report.status == "draft" and due_at(d) == checked_out, "owed from the check-out"
    assert late(bot_app) == 0, "checked out within report_reminder_days: not late yet"

    days = bot_app.rt.program.report_reminder_days
    business_time(bot_app, checked_out + timedelta(days=days, minutes=1))
    assert late(bot_app) == 1, "N days after the check-out, the draft is late"

    for answer in ANSWERS:
        bot_app.text(EXPERT, answer)
    bot_app.text(EXPERT, "130分")
    bot_app.text(EXPERT, "なし")
    bot_app.text(EXPERT, "なし")
    assert "支援実施報告書を送信しました" in tap(bot_app, EXPERT, "p=submit")[0]
    assert Report.get_by_id(report.id).status == "submitted"
    assert late(bot_app) == 0 and due_at(d) is None, "sent: nothing owed"

    tap(bot_app, REVIEWER, f"a=rep_return&id={report.id}")
    bot_app.text(REVIEWER, "支援内容をもう少し具体的に書いてください。")
    assert "差し戻しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    assert Report.get_by_id(report.id).status == "returned"
    assert late(bot_app) == 1 and due_at(d) == checked_out, "returned: owed again, from the same check-out"

    bot_app.text(EXPERT, "報告書")  # the returned report opens at its summary
    assert "支援実施報告書を送信しました" in tap(bot_app, EXPERT, "p=submit")[0]
    assert late(bot_app) == 0 and due_at(d) is None

    tap(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")
    assert "受理しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    assert Report.get_by_id(report.id).status == "accepted"
    assert late(bot_app) == 0 and due_at(d) is None


def test_a_dispatch_never_checked_out_owes_no_report(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "統計商工会", REVIEWER)
    expert = commissioned_expert(inst)
    waiting, accepted = dispatch_for(expert, REVIEWER, status="requested"), dispatch_for(expert, REVIEWER)
    business_time(bot_app, datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=30))
    assert late(bot_app) == 0 and due_at(waiting) is None and due_at(accepted) is None


# --- a database from before v10 -------------------------------------------------------------------------


def test_migration_v10_fills_report_due_at_by_the_rule(database):
    program = load_program(ROOT / "program.toml")
    days = program.report_reminder_days
    inst = repo.create_institution("移行商工会", "よろず")
    expert = Expert.create(user=repo.ensure_user(EXPERT), status="commissioned", institution=inst, draft={},
                           profile={})
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    old, recent = now - timedelta(days=days + 2), now - timedelta(hours=1)
    # (status, check-out, report status) → report_due_at
    cases = [
        ("completed", old, None, old),  # no report yet: owed, late
        ("completed", old, "draft", old),  # opened, not sent: late
        ("completed", old, "returned", old),  # returned, not sent again: late
        ("completed", recent, None, recent),  # owed, not late yet
        ("completed", old, "submitted", None),
        ("completed", old, "accepted", None),
        ("checked_in", None, None, None),
        ("cancelled", None, None, None),
    ]
    made = []
    for n, (status, out, report, _) in enumerate(cases):
        d = dispatch_for(expert, REVIEWER, when=old, status=status, name=f"株式会社移行{n}")
        if out is not None:
            Attendance.create(dispatch=d, kind="in", line_timestamp=out - timedelta(hours=2), latitude=0,
                              longitude=0, distance_m=0, event_id=f"in-{d.id}")
            Attendance.create(dispatch=d, kind="out", line_timestamp=out, latitude=0, longitude=0, distance_m=0,
                              event_id=f"out-{d.id}")
        if report is not None:
            Report.create(dispatch=d, status=report, draft={})
        made.append(d)
    assert tuple(REPORT_EDITABLE) == V10_REPORT_UNSENT, "the migration fills by the rule the bot keeps"

    # As a v9 database has them: no column, no index on it (nor on the status /stats groups by).
    db = db_proxy.obj
    for index in ("dispatch_report_due_at", "dispatch_status"):
        db.execute_sql(f'DROP INDEX "{index}"')
    db.execute_sql('ALTER TABLE "dispatch" DROP COLUMN "report_due_at"')
    SchemaVersion.delete().where(SchemaVersion.version >= 10).execute()

    assert apply_migrations() == (9, LATEST)
    assert {"dispatch_report_due_at", "dispatch_status"} <= {i.name for i in db.get_indexes("dispatch")}
    assert [due_at(d) for d in made] == [expected for *_, expected in cases]
    assert stats.late_reports(program) == stats.late_reports_by_scan(program) == 3

    # Idempotent: run again over filled rows, nothing changes.
    _v10_report_due(db, SchemaMigrator.from_database(db))
    assert [due_at(d) for d in made] == [expected for *_, expected in cases]
