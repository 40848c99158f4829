"""``CompiledInsertMany`` writes exactly what peewee's ``insert_many`` writes, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime

import pytest

from storage.fastsql import CompiledInsertMany
from storage.models import AuditLog

FIELDS = [AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.before, AuditLog.after, AuditLog.at]


def _written(action: str) -> list[tuple]:
    return [(a.actor, a.target, a.before, a.after, a.at) for a in
            AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id)]


@pytest.mark.usefixtures("database")
def test_compiled_insert_many_writes_what_insert_many_writes():
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
