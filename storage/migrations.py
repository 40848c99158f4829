"""Schema versions. ``apply_migrations`` is idempotent: it runs what is missing.

A new migration appends a function to ``MIGRATIONS`` that uses
``playhouse.migrate`` (add_column, add_index…) and never edits an old one.
"""
from __future__ import annotations

from collections.abc import Callable

from peewee import Database
from playhouse.migrate import SchemaMigrator

from storage import models
from storage.db import database


def _v1_initial(db: Database, migrator: SchemaMigrator) -> None:
    db.create_tables([m for m in models.ALL_MODELS if m is not models.SchemaVersion], safe=True)


MIGRATIONS: list[Callable[[Database, SchemaMigrator], None]] = [
    _v1_initial,
]

LATEST = len(MIGRATIONS)


def current_version() -> int:
    db = database.obj
    if not db.table_exists(models.SchemaVersion._meta.table_name):
        return 0
    row = models.SchemaVersion.select().order_by(models.SchemaVersion.version.desc()).first()
    return row.version if row else 0


def apply_migrations() -> tuple[int, int]:
    """Bring the schema to ``LATEST``; returns (version before, version after)."""
    db = database.obj
    db.create_tables([models.SchemaVersion], safe=True)
    before = current_version()
    migrator = SchemaMigrator.from_database(db)
    for number, migration in enumerate(MIGRATIONS, start=1):
        if number <= before:
            continue
        with db.atomic():
            migration(db, migrator)
            models.SchemaVersion.create(version=number)
    return before, current_version()
