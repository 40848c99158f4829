"""/stats's experts and dispatches per status are counts the database keeps (``StatusCount``).

Triggers keep them (``storage.status_counts``), so every path that writes an expert or a dispatch
counts: the webhook's flows, bulk inserts, a purge's deletes, cascades, even a hand-written UPDATE.
Every ``bot_app`` test also checks, when it ends, that the kept counts are the tables' own
(``tests/conftest.py``). These tests drive the paths one by one, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import threading
from datetime import datetime

import pytest
from peewee import PostgresqlDatabase

from storage import repo, status_counts
from storage.db import database as db_proxy
from storage.migrations import LATEST, apply_migrations
from storage.models import Business, Dispatch, Expert, LineUser, SchemaVersion, StatusCount
from tests.actors import (
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
)


def experts(*statuses: str) -> list[Expert]:
    """Experts in these statuses, each with their own LINE user, written directly."""
    first = Expert.select().count()
    inst = repo.create_institution(f"集計機関{first}", "よろず")
    return [Expert.create(user=repo.ensure_user(f"U{first + n:032x}"), status=status, institution=inst)
            for n, status in enumerate(statuses)]


def kept(kind: str) -> dict[str, int]:
    """The kept counts, after checking them against the table itself."""
    counted = status_counts.by_scan(kind)
    assert status_counts.counts(kind) == counted, (status_counts.counts(kind), counted)
    return counted


def stats_line(bot_app, label: str) -> str:
    text = bot_app.text(SEC, "/stats")[0]
    return next(line.strip() for line in text.splitlines() if line.strip().startswith(label + "："))


def test_a_follow_an_acceptance_and_a_withdrawal_through_the_webhook_move_the_counts(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "集計商工会", REVIEWER)
    expert = commissioned_expert(inst)
    dispatch = dispatch_for(expert, REVIEWER, status="requested")
    assert stats_line(bot_app, "受諾待ち") == "受諾待ち：1件"
    assert stats_line(bot_app, "委嘱済み") == "委嘱済み：1件"

    bot_app.say("U" + "9" * 32, "follow")  # a newcomer: an expert row in draft
    assert kept("expert") == {"commissioned": 1, "draft": 1}
    assert stats_line(bot_app, "入力中（未送信）") == "入力中（未送信）：1件"

    assert "受諾しました" in bot_app.say(EXPERT, "postback", data=f"a=dsp_accept&id={dispatch.id}")[0]
    assert kept("dispatch") == {"accepted": 1}
    assert stats_line(bot_app, "受諾待ち") == "受諾待ち：0件"
    assert stats_line(bot_app, "受諾済み") == "受諾済み：1件"


def test_bulk_inserts_deletes_cascades_and_a_hand_written_update_all_count(database):
    reviewer = repo.ensure_user("U" + "2" * 32)
    four = experts("draft", "commissioned", "commissioned", "withdrawn")
    inst = four[0].institution
    business = Business.create(institution=inst, name="一括製作所", latitude=35.0, longitude=139.0)
    rows = [{"business": business, "institution": inst, "expert": four[1 + n % 2], "requested_by": reviewer,
             "theme": "経営戦略", "scheduled_at": datetime(2026, 6, 1 + n % 28), "status": status}
            for n, status in enumerate(["requested"] * 30 + ["completed"] * 50 + ["cancelled"] * 20)]
    Dispatch.insert_many(rows).execute()  # one statement, a hundred rows
    assert kept("dispatch") == {"requested": 30, "completed": 50, "cancelled": 20}
    assert kept("expert") == {"draft": 1, "commissioned": 2, "withdrawn": 1}

    Dispatch.delete().where(Dispatch.status == "cancelled").execute()  # as the purge deletes
    Dispatch.update(status="accepted").where(Dispatch.status == "requested").execute()  # thirty moves at once
    db_proxy.execute_sql("UPDATE dispatch SET status = status")  # nothing moved: nothing counted
    assert kept("dispatch") == {"accepted": 30, "completed": 50}

    four[2].delete_instance(recursive=True)  # its dispatches go with it (half of them)
    LineUser.delete().where(LineUser.id == four[0].user_id).execute()  # the expert cascades from the user
    assert kept("expert") == {"commissioned": 1, "withdrawn": 1}
    assert sum(kept("dispatch").values()) == 40


def test_an_older_database_gets_the_counts_filled_and_kept_from_then_on(database):
    experts("draft", "pending_institution", "pending_institution", "commissioned")
    # As v12 left it: no counts, no triggers.
    db = db_proxy.obj
    for table in ("expert", "dispatch"):
        on = f' ON "{table}"' if isinstance(db, PostgresqlDatabase) else ""  # SQLite's DROP TRIGGER names no table
        for what in ("inserted", "moved", "deleted"):
            db.execute_sql(f'DROP TRIGGER IF EXISTS "{table}_status_{what}"{on}')
    db.drop_tables([StatusCount])
    SchemaVersion.delete().where(SchemaVersion.version > 12).execute()
    experts("returned")  # written while the old code still ran

    assert apply_migrations() == (12, LATEST)
    assert kept("expert") == {"draft": 1, "pending_institution": 2, "commissioned": 1, "returned": 1}
    Expert.update(status="pending_secretariat").where(Expert.status == "pending_institution").execute()
    assert kept("expert") == {"draft": 1, "pending_secretariat": 2, "commissioned": 1, "returned": 1}


def test_moves_racing_in_opposite_directions_neither_deadlock_nor_lose_a_count(database, db_kind):
    """Many connections move experts back and forth between two statuses at once: on PostgreSQL
    each move locks its two count rows in status order, so none waits on another in a cycle."""
    if db_kind != "postgres":
        pytest.skip("SQLite serialises writers: there is nothing to race")
    ids = [e.id for e in experts(*["pending_institution", "returned"] * 20)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def mover(offset: int) -> None:
        try:
            start.wait()
            for round_ in range(15):
                with db_proxy.atomic():
                    for expert_id in ids[offset::4][:: 1 if round_ % 2 else -1]:
                        flipped = Expert.get_by_id(expert_id).status
                        target = "returned" if flipped == "pending_institution" else "pending_institution"
                        Expert.update(status=target).where(Expert.id == expert_id).execute()
        except BaseException as exc:  # a deadlock would surface here
            errors.append(exc)
        finally:
            db_proxy.close()

    threads = [threading.Thread(target=mover, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(kept("expert").values()) == 40
