"""The precompiled statements write and read exactly what the ORM would."""
from __future__ import annotations

from datetime import datetime

import pytest
from peewee import IntegrityError

from storage import repo
from storage.fastsql import CompiledInsertMany
from storage.models import AuditLog, Expert, Institution, LineUser


def test_precompiled_statements_round_trip(database):
    user = repo.ensure_user("U" + "3" * 32)
    assert repo.get_user(user.line_user_id).id == user.id
    expert = repo.ensure_expert(user)
    institution = Institution.create(name="SQL商工会", kind="よろず支援拠点", code="SQL123")
    repo.update_draft(expert, institution_id=institution.id, institution_name="SQL商工会")
    repo.update_draft(expert, family_name="山田")
    stored = Expert.get_by_id(expert.id)
    assert stored.draft == {"institution_id": institution.id, "institution_name": "SQL商工会", "family_name": "山田"}
    assert stored.institution_id == institution.id
    assert repo.bump_session_rev(user) == 1 and LineUser.get_by_id(user.id).session_rev == 1
    repo.audit("actor", "action", target="t", before="b", after="a", reason="r", event_id="e")
    row = AuditLog.get()
    assert (row.actor, row.action, row.target, row.before, row.after, row.reason, row.event_id) == (
        "actor", "action", "t", "b", "a", "r", "e")
    repo.mark_processed("evt-1", user.line_user_id)
    with pytest.raises(IntegrityError):
        with Expert._meta.database.atomic():
            repo.mark_processed("evt-1", user.line_user_id)


def test_a_wrong_number_of_parameters_is_refused(database):
    with pytest.raises(TypeError):
        repo._BUMP_REV.execute(1, 2, 3)


def test_statements_follow_the_database_they_run_on(tmp_path):
    """SQLite and PostgreSQL spell placeholders differently: never reuse one's SQL for the other."""
    from peewee import PostgresqlDatabase

    from storage import db as storage_db

    storage_db.bind(f"sqlite:///{tmp_path / 'a.db'}")
    sqlite_sql = repo._AUDIT.sql()
    storage_db.database.initialize(PostgresqlDatabase("never-connected"))
    try:
        assert "%s" in repo._AUDIT.sql() and "?" in sqlite_sql
    finally:
        storage_db.database.initialize(None)


def test_compiled_creates_write_what_the_orm_would(database):
    """A first event's user and expert rows: the same columns, defaults and sealed draft as
    ``create``, the new id read back on either database, nothing left dirty."""
    user, created = repo.user_for_event("U" + "4" * 32)
    assert created and user.id and not user._dirty
    again, created_again = repo.user_for_event(user.line_user_id)
    assert again.id == user.id and not created_again
    stored = LineUser.get_by_id(user.id)
    assert (stored.following, stored.session_rev, stored.role, stored.last_event_ms) == (True, 0, None, None)
    assert stored.created_at == user.created_at
    expert = repo.ensure_expert(user)
    assert expert.id and not expert._dirty and repo.ensure_expert(user) is expert
    row = Expert.get_by_id(expert.id)
    assert (row.user_id, row.status, row.draft, row.index_fp) == (user.id, "draft", {}, expert.index_fp)
    other = repo.ensure_expert(repo.user_for_event("U" + "5" * 32)[0])
    assert other.id != expert.id
    repo.update_draft(other, family_name="鈴木")
    assert Expert.get_by_id(other.id).draft == {"family_name": "鈴木"}


FIELDS = [AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.before, AuditLog.after, AuditLog.at]


def _written(action: str) -> list[tuple]:
    return [(a.actor, a.target, a.before, a.after, a.at) for a in
            AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id)]


@pytest.mark.usefixtures("database")
def test_compiled_insert_many_writes_what_insert_many_writes():
    """A batch of ``conditions announce``'s audit rows: the same rows as peewee's ``insert_many``."""
    at = datetime(2026, 11, 30, 12, 34, 56, 789000)
    rows = [("system", f"expert:{n}", None if n % 2 else "v1", "v2", at) for n in range(7)]
    AuditLog.insert_many([(actor, "by.peewee", target, before, after, when) for actor, target, before, after, when in rows],
                         fields=FIELDS).execute()
    insert = CompiledInsertMany(AuditLog, FIELDS)
    insert.execute([(actor, "compiled", target, before, after, when) for actor, target, before, after, when in rows[:3]])
    insert.execute([(actor, "compiled", target, before, after, when) for actor, target, before, after, when in rows[3:]])
    insert.execute([])  # nothing to write: no statement

    assert _written("compiled") == _written("by.peewee") == rows
    with pytest.raises(ValueError):  # a row of the wrong shape is refused, not written misaligned
        insert.execute([("system", "compiled", "expert:9")])
