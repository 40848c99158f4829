"""Every query a reviewer's or the secretariat's command runs can use an index (PostgreSQL).

National scale is 10,000 experts, 50,000 dispatches and reports and 410,000 audit rows: a
command that scans one of those tables grows with the country. The commands are run through
the webhook as LINE would; every SELECT they issue is captured (peewee logs each statement)
and explained with sequential scans priced out (``enable_seqscan = off``, so on these small
test tables the planner still shows a seq scan only where no index can serve the query).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from domain.fee_totals import refill_fee_totals
from storage.db import database
from storage.migrations import LATEST, apply_migrations
from storage.models import Outbox, Report, SchemaVersion
from tests.actors import (
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    submitted_application,
    tap,
)
from tests.test_reports import checked

# The tables that grow with the country (lineuser, institution and the small lookup tables may be scanned).
BIG_TABLES = ("expert", "dispatch", "report", "outbox", "auditlog", "processedevent", "personindex",
              "expertarea", "expertfield", "attendance", "feetotal")
SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, tuple]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql, params = record.msg
            if isinstance(sql, str) and sql.lstrip().upper().startswith("SELECT"):
                self.seen.append((sql, tuple(params or ())))


@contextmanager
def statements() -> Iterator[_Statements]:
    logger = logging.getLogger("peewee")
    handler, level = _Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def plan_of(sql: str, params: tuple, *, sorts: bool = True) -> str:
    """PostgreSQL's plan for the statement, sequential scans priced out (and sorts, with
    ``sorts=False``: a Sort left in the plan is then one no index can spare)."""
    with database.atomic():
        database.execute_sql("SET LOCAL enable_seqscan = off")
        if not sorts:
            database.execute_sql("SET LOCAL enable_sort = off")
        return "\n".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def scanned(sql: str, params: tuple) -> list[str]:
    """The big tables this statement would read whole, sequential scans priced out."""
    return [table for table in SEQ_SCAN.findall(plan_of(sql, params)) if table in BIG_TABLES]


def test_every_command_query_can_use_an_index(bot_app, db_kind):
    if db_kind != "postgres":
        pytest.skip("query plans are PostgreSQL's (TEST_DATABASE_URL)")
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "計画支援機関", REVIEWER)
    experts = [commissioned_expert(inst, user=f"U{n:031x}d", family_name="高橋", given_name=f"一{n}") for n in range(3)]
    submitted_application(inst, user="U" + "f" * 31 + "1")
    d = dispatch_for(experts[0], REVIEWER, when=datetime(2026, 6, 10, 1, 0), status="completed")
    Report.create(dispatch=d, status="accepted", fee_month="2026-06", minutes=60, gross_yen=5280, withholding_yen=0,
                  travel_yen=0, net_yen=5280)
    refill_fee_totals()  # /fees's sums, as the report machine keeps them
    commands = [
        (SEC, "/pending"), (SEC, "/find 高橋"), (SEC, "/find 高橋一0"), (SEC, "/dispatches"),
        (SEC, "/dispatches completed"), (SEC, "/reports"), (SEC, "/reports accepted"), (SEC, "/fees 2026-06"),
        (SEC, "/staff"), (SEC, "/stats"), (REVIEWER, "審査待ち"), (REVIEWER, "依頼一覧"),
        # 支援依頼 up to the experts who fit (area + field, matched in SQL), then a name searched.
        (REVIEWER, "支援依頼"), (REVIEWER, "株式会社計画"), (REVIEWER, "なし"), (REVIEWER, "東京都大田区蒲田5-13-1"),
        (REVIEWER, "はい"), (REVIEWER, "経営戦略"), (REVIEWER, "高橋"),
    ]
    problems: dict[str, list[str]] = {}
    answers: dict[str, list[str]] = {}
    for user, text in commands:
        with statements() as seen:
            replies = bot_app.text(user, text)
        assert seen.seen and replies, f"{text}: no statement captured"
        answers[text] = replies
        for sql, params in seen.seen:
            tables = scanned(sql, params)
            if tables:
                problems.setdefault(text, []).append(f"{tables}: {sql[:160]}")
    assert any("高橋" in t for t in answers["経営戦略"]), answers["経営戦略"]  # the request reached the matching
    assert not problems, problems


def test_stats_reads_the_kept_counts_and_two_index_ranges(bot_app, db_kind):
    """/stats costs the same at 10,000 experts as at 10: experts and dispatches per status are the
    few rows the triggers keep (``StatusCount``), the reports late one range of
    ``Dispatch.report_due_at`` and the failed pushes one of ``Outbox.status``, each an
    index-only scan; nothing is grouped or joined."""
    if db_kind != "postgres":
        pytest.skip("query plans are PostgreSQL's (TEST_DATABASE_URL)")
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "計画支援機関", REVIEWER)
    expert = commissioned_expert(inst)
    june_10 = datetime(2026, 6, 10, 1, 0)
    checked(dispatch_for(expert, REVIEWER, when=june_10, status="completed"), june_10, 120)  # no report yet: late
    Outbox.create(to=SEC, status="failed", reason="test")
    for table in ("expert", "dispatch", "outbox", "statuscount"):  # the visibility map, as autovacuum keeps it
        database.execute_sql(f'VACUUM ANALYZE "{table}"')
    with statements() as seen:
        text = bot_app.text(SEC, "/stats")[0]
    assert "提出が遅れている報告書：1件" in text and "送信失敗の通知：1件" in text, text
    assert "完了：1件" in text, text  # the dispatch, counted by the triggers
    touched = [(sql, params) for sql, params in seen.seen if re.search(r'FROM "(expert|dispatch|outbox|statuscount)"', sql)]
    assert not any("GROUP BY" in sql for sql, _ in touched), touched
    kept = [(sql, params) for sql, params in touched if 'FROM "statuscount"' in sql]
    counts = [(sql, params) for sql, params in touched if "COUNT(" in sql]
    assert len(kept) == 2 and len(counts) == 2, [sql for sql, _ in touched]
    for sql, params in kept:
        assert "Index" in plan_of(sql, params), (sql, plan_of(sql, params))
    for sql, params in counts:
        plan = plan_of(sql, params)
        assert "Index Only Scan" in plan and not re.search(r"Seq Scan|Heap|Join|Nested Loop", plan), (sql, plan)


def test_fees_reads_a_page_of_kept_sums_and_the_months_row(bot_app, db_kind):
    """/fees costs the same at 10,000 experts as at 10: a page of the month's per-expert sums from
    the (fee_month, expert) index, the month's row by its key, the names shown, and the month's
    reports waiting (the (fee_month, status) index); no report is summed. Accepting a report keeps
    the sums with one expert's dispatches and the month's rows, from indexes too."""
    if db_kind != "postgres":
        pytest.skip("query plans are PostgreSQL's (TEST_DATABASE_URL)")
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "計画支援機関", REVIEWER)
    june_10 = datetime(2026, 6, 10, 1, 0)
    for n in range(3):
        expert = commissioned_expert(inst, user=f"U{n:031x}e", family_name="高橋", given_name=f"一{n}")
        for status in ("accepted", "submitted"):
            Report.create(dispatch=dispatch_for(expert, REVIEWER, when=june_10, status="completed"), status=status,
                          fee_month="2026-06", minutes=60, gross_yen=5280, withholding_yen=0, travel_yen=0,
                          net_yen=5280, draft={})
    refill_fee_totals()
    waiting = Report.select().where(Report.status == "submitted").order_by(Report.id).first()
    with statements() as seen:
        text = bot_app.text(SEC, "/fees 2026-06")[0]
        assert "合計：3件" in text and "確認待ち3件" in text, text
        tap(bot_app, REVIEWER, f"a=rep_accept&id={waiting.id}")
        assert "受理しました" in tap(bot_app, REVIEWER, "c=yes")[0]
        assert "合計：4件" in bot_app.text(SEC, "/fees 2026-06")[0]
    summed = [sql for sql, _ in seen.seen if 'FROM "report"' in sql and "SUM(" in sql]
    assert len(summed) == 1 and '"expert_id" = %s' in summed[0], "reports summed once, one expert's (the accept)"
    assert not {sql: scanned(sql, params) for sql, params in seen.seen if scanned(sql, params)}
    page = [(sql, params) for sql, params in seen.seen if 'FROM "feetotal"' in sql and "LIMIT" in sql]
    assert page and all("feetotal_fee_month_expert_id" in plan_of(sql, params) for sql, params in page)


def test_dispatches_reads_its_page_in_index_order_and_kept_totals(bot_app, db_kind):
    """/dispatches costs the same at 50,000 dispatches as at 50: the page is read newest first
    from (scheduled_at, id) or (status, scheduled_at, id), so ties of one hour need no sort
    (without the id PostgreSQL read the whole latest hour, joined and sorted it), and the
    totals are the kept counts (``StatusCount``), not a count of the table."""
    if db_kind != "postgres":
        pytest.skip("query plans are PostgreSQL's (TEST_DATABASE_URL)")
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "計画支援機関", REVIEWER)
    expert = commissioned_expert(inst)
    two_pm = datetime(2026, 6, 10, 5, 0)  # 14:00 in Tokyo, the hour every dispatch shares here
    made = [dispatch_for(expert, REVIEWER, when=two_pm, status="completed" if n % 2 else "accepted").id
            for n in range(25)]
    for table in ("dispatch", "business", "expert"):
        database.execute_sql(f'VACUUM ANALYZE "{table}"')
    with statements() as seen:
        first = bot_app.text(SEC, "/dispatches")[0]
        completed = bot_app.text(SEC, "/dispatches completed")[0]
    assert "全25件（1〜20件目）" in first and "（完了）：12件" in completed, (first, completed)
    shown = [int(n) for n in re.findall(r"^No\.(\d+) ", first, re.MULTILINE)]
    assert shown == sorted(made, reverse=True)[:20], shown  # one hour: the newest number first
    touched = [(sql, params) for sql, params in seen.seen if 'FROM "dispatch"' in sql]
    assert not [sql for sql, _ in touched if "COUNT(" in sql], "the totals are kept, not counted"
    pages = [(sql, params) for sql, params in touched if "LIMIT" in sql and "ORDER BY" in sql]
    assert len(pages) == 2, [sql for sql, _ in touched]
    for sql, params in pages:  # on 25 rows PostgreSQL may sort anyway: asked not to, it needs the index
        plan = plan_of(sql, params, sorts=False)
        assert "Sort" not in plan and "scheduled_at_id" in plan, (sql, plan)


@pytest.mark.usefixtures("database")
def test_an_older_database_gets_the_dispatch_order_indexes():
    """v14 on a database v13 left: the (scheduled_at, id) indexes made, the ones without the id dropped."""
    db = database.obj
    for name in ("dispatch_scheduled_at_id", "dispatch_status_scheduled_at_id"):
        db.execute_sql(f'DROP INDEX "{name}"')
    db.execute_sql('CREATE INDEX "dispatch_scheduled_at" ON "dispatch" ("scheduled_at")')
    db.execute_sql('CREATE INDEX "dispatch_status_scheduled_at" ON "dispatch" ("status", "scheduled_at")')
    SchemaVersion.delete().where(SchemaVersion.version > 13).execute()

    assert apply_migrations() == (13, LATEST)
    names = {index.name for index in db.get_indexes("dispatch")}
    assert {"dispatch_scheduled_at_id", "dispatch_status_scheduled_at_id"} <= names, names
    assert not {"dispatch_scheduled_at", "dispatch_status_scheduled_at"} & names, names
