"""The national-scale benchmark's seed (bench/scale_seed.py) writes what the bot itself writes.

``make bench-scale`` measures the bot on 10,000 experts seeded in bulk; if
those rows differed from the ones the flows write (a name not sealed, an
index row missing, a fee computed another way), it would measure another
program. Seeding 10 experts here takes well under a second.
"""
from __future__ import annotations

from datetime import datetime, timezone

from bench import scale_seed
from bench.common import ROOT
from domain import fees, stats
from domain.statuses import refresh_report_due
from program import load_program
from storage.db import database as db_proxy
from storage.models import (
    Dispatch,
    Expert,
    ExpertArea,
    ExpertField,
    FeeMonth,
    LineUser,
    PersonIndex,
    Report,
    reindex,
)
from tests.test_fee_totals import agree


def _index_of(expert_id: int) -> set[tuple[str, str]]:
    return {(r.kind, r.digest) for r in PersonIndex.select().where(PersonIndex.expert == expert_id)}


def test_seed_is_what_the_bot_writes(database: str) -> None:
    program = load_program(ROOT / "program.toml")
    seeded = scale_seed.seed(program, 10, probes=3)

    commissioned = list(Expert.select().where(Expert.status == "commissioned").order_by(Expert.id))
    assert len(commissioned) == 10
    # Five each, and institution 1 (the measured reviewer's, expert 0's) topped up to a page of 依頼一覧 and one more.
    assert seeded.counts["Dispatch"] == 10 * scale_seed.DISPATCHES_PER_EXPERT + scale_seed.FULL_PAGE_UPCOMING - 1
    upcoming = Dispatch.select().where((Dispatch.institution == 1) & Dispatch.status.in_(("requested", "accepted")))
    assert upcoming.count() == scale_seed.FULL_PAGE_UPCOMING
    assert seeded.counts["Institution"] == scale_seed.INSTITUTIONS
    assert Expert.select().where(Expert.status == "pending_institution").count() == 2

    for expert in commissioned:
        # The blind indexes and coverage rows are exactly reindex's: recomputing changes nothing.
        rows, fp = _index_of(expert.id), expert.index_fp
        areas = {a.prefecture for a in ExpertArea.select().where(ExpertArea.expert == expert.id)}
        fields = {f.field for f in ExpertField.select().where(ExpertField.expert == expert.id)}
        expert.index_fp = None
        reindex(expert)
        assert expert.index_fp == fp
        assert _index_of(expert.id) == rows and rows
        assert areas == set(expert.profile["areas"]) and fields == set(expert.profile["expertise"])
        assert expert.commission_number.endswith(f"{expert.id:05d}")

    # Personal columns are sealed at rest, read back plain through the model.
    raw = db_proxy.execute_sql("SELECT family_name, draft FROM expert WHERE id = 1").fetchone()
    assert raw[0].startswith("gAAAA") and raw[1].startswith("gAAAA")
    assert Expert.get_by_id(1).family_name == "山田"

    # Fees as the report flow stores them, in the month the domain gives.
    accepted = list(Report.select().where(Report.status == "accepted"))
    assert accepted
    for report in accepted:
        fee = fees.compute_fee(program, report)
        assert (report.gross_yen, report.net_yen, report.minutes) == (fee.gross_yen, fee.net_yen, fee.minutes)
        assert report.fee_month == fees.fee_month(program, report)
    assert seeded.export_month in {r.fee_month for r in accepted}

    # The reports late: some returned, some drafts, some never opened; ``report_due_at`` written as the
    # status machines keep it (recomputing it by the rule changes nothing) and /stats counts them from it.
    def due() -> dict[int, datetime | None]:
        return {d.id: d.report_due_at for d in Dispatch.select(Dispatch.id, Dispatch.report_due_at)}

    seeded_due = due()
    refresh_report_due(Dispatch.id > 0)
    assert due() == seeded_due
    assert {r.status for r in Report.select(Report.status)} >= {"draft", "returned", "submitted", "accepted"}
    assert stats.late_reports(program) == stats.late_reports_by_scan(program) == 3

    # /fees's sums filled by the rule: every month's are the sums of its accepted reports.
    months = {r.fee_month for r in accepted}
    assert {m.fee_month for m in FeeMonth.select()} == months
    for month in months:
        agree(month)

    # The bot can go on writing (ids past the seeded ones, on PostgreSQL too), and the probes
    # get an accepted dispatch of today.
    LineUser.create(line_user_id="U" + "f" * 32)
    ids = scale_seed.arm_probes(program, seeded.probes, 0)
    today = datetime.now(timezone.utc).date()
    armed = list(Dispatch.select().where(Dispatch.id.in_(ids)))
    assert len(armed) == 3 and all(d.status == "accepted" and d.scheduled_at.date() == today for d in armed)
