"""Experts and dispatches per status, kept by the database itself (``StatusCount``, v13).

/stats used to count them with a GROUP BY over the status index: about 3 ms for 10,000
experts and 7 ms for 50,000 dispatches on SQLite, growing with the country. Now it reads a
handful of rows.

Triggers keep the counts, not the status machines, because statuses are not the only
writers. Experts are created on a follow, seeded in bulk and deleted by the retention purge,
directly or by cascade. Every such path counts the same way, and a path added later cannot
forget to. A status machine's ``UPDATE … WHERE status = …`` fires the same trigger as any
other update.

- **SQLite**: row triggers. Rows are updated in place, and writers are serialised anyway.
- **PostgreSQL**:
  - A move is a row trigger that touches its two count rows in status order. Two
    transactions moving experts in opposite directions take the locks in the same order,
    so they never deadlock.
  - Inserts and deletes are statement triggers over the transition table, one counting
    statement each. A row trigger would update the same count row once per row, and in one
    transaction PostgreSQL keeps every version of that row: a seed of 50,000 dispatches
    would walk ever longer version chains.

:func:`install` (re)creates the triggers and :func:`fill` recounts by the rule. The migration
runs both in one transaction, so a write between them cannot be lost. :func:`by_scan` is
the rule itself, for the tests and for ops to compare with.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from peewee import SQL, PostgresqlDatabase, Value, fn

from storage.db import database
from storage.models import BaseModel, Dispatch, Expert, StatusCount

COUNTED: dict[str, type[BaseModel]] = {"expert": Expert, "dispatch": Dispatch}
TABLE = StatusCount._meta.table_name


def counts(kind: str) -> dict[str, int]:
    """status → rows of ``kind`` ("expert" / "dispatch"), as kept: one read of a few rows."""
    query = StatusCount.select(StatusCount.status, StatusCount.n).where(StatusCount.kind == kind)
    # peewee's stubs type ``.tuples()`` as a query of models; it yields (status, n) rows.
    return {status: n for status, n in cast(Iterable[tuple[str, int]], query.tuples()) if n}


def by_scan(kind: str) -> dict[str, int]:
    """status → rows of ``kind``, counted from the table itself: what :func:`counts` must equal."""
    model = COUNTED[kind]
    query = model.select(model.status, fn.COUNT(SQL("*"))).group_by(model.status)  # type: ignore[attr-defined]  # both counted models have a status column
    return dict(cast(Iterable[tuple[str, int]], query.tuples()))


def fill() -> None:
    """Every count anew by the rule (idempotent: one DELETE, one INSERT … SELECT per table)."""
    StatusCount.delete().execute()
    for kind, model in COUNTED.items():
        rows = model.select(Value(kind), model.status, fn.COUNT(SQL("*"))).group_by(model.status)  # type: ignore[attr-defined]  # as above
        StatusCount.insert_from(rows, [StatusCount.kind, StatusCount.status, StatusCount.n]).execute()


def install() -> None:
    """(Re)create the triggers that keep the counts, for every counted table."""
    postgres = isinstance(database.obj, PostgresqlDatabase)
    statements = _postgres_triggers if postgres else _sqlite_triggers
    for kind in COUNTED:
        for sql in statements(kind, COUNTED[kind]._meta.table_name):
            database.execute_sql(sql)


def _sqlite_triggers(kind: str, table: str) -> list[str]:
    add = (f"INSERT INTO \"{TABLE}\" (kind, status, n) VALUES ('{kind}', NEW.status, 1) "
           "ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;")
    remove = f"UPDATE \"{TABLE}\" SET n = n - 1 WHERE kind = '{kind}' AND status = OLD.status;"
    return [
        *(f'DROP TRIGGER IF EXISTS "{table}_status_{what}"' for what in ("inserted", "moved", "deleted")),
        f'CREATE TRIGGER "{table}_status_inserted" AFTER INSERT ON "{table}" BEGIN {add} END',
        f'CREATE TRIGGER "{table}_status_moved" AFTER UPDATE OF status ON "{table}" '
        f"WHEN OLD.status IS NOT NEW.status BEGIN {remove} {add} END",
        f'CREATE TRIGGER "{table}_status_deleted" AFTER DELETE ON "{table}" BEGIN {remove} END',
    ]


_PG_FUNCTIONS = [
    f"""CREATE OR REPLACE FUNCTION status_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "{TABLE}" AS c (kind, status, n)
        SELECT TG_ARGV[0], status, count(*) FROM new_rows GROUP BY status ORDER BY status
        ON CONFLICT (kind, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE FUNCTION status_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE "{TABLE}" AS c SET n = c.n - d.n
        FROM (SELECT status, count(*) AS n FROM old_rows GROUP BY status) AS d
        WHERE c.kind = TG_ARGV[0] AND c.status = d.status;
    RETURN NULL;
END $$""",
    # The two rows in status order, whatever the direction of the move (see the module's docstring).
    f"""CREATE OR REPLACE FUNCTION status_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "{TABLE}" (kind, status, n) VALUES (TG_ARGV[0], NEW.status, 0) ON CONFLICT DO NOTHING;
    UPDATE "{TABLE}" SET n = n + CASE WHEN status = NEW.status THEN 1 ELSE -1 END
        WHERE kind = TG_ARGV[0] AND status = LEAST(OLD.status, NEW.status);
    UPDATE "{TABLE}" SET n = n + CASE WHEN status = NEW.status THEN 1 ELSE -1 END
        WHERE kind = TG_ARGV[0] AND status = GREATEST(OLD.status, NEW.status);
    RETURN NULL;
END $$""",
]


def _postgres_triggers(kind: str, table: str) -> list[str]:
    return [
        *_PG_FUNCTIONS,
        *(f'DROP TRIGGER IF EXISTS "{table}_status_{what}" ON "{table}"' for what in ("inserted", "moved", "deleted")),
        f'CREATE TRIGGER "{table}_status_inserted" AFTER INSERT ON "{table}" REFERENCING NEW TABLE AS new_rows '
        f"FOR EACH STATEMENT EXECUTE FUNCTION status_count_inserted('{kind}')",
        f'CREATE TRIGGER "{table}_status_moved" AFTER UPDATE OF status ON "{table}" FOR EACH ROW '
        f"WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION status_count_moved('{kind}')",
        f'CREATE TRIGGER "{table}_status_deleted" AFTER DELETE ON "{table}" REFERENCING OLD TABLE AS old_rows '
        f"FOR EACH STATEMENT EXECUTE FUNCTION status_count_deleted('{kind}')",
    ]
