"""Database connection: one peewee proxy, bound at start-up, never at import.

Connecting at import time breaks gunicorn ``--preload`` (a forked worker
would share the parent's socket), so ``bind`` is called by the app factory,
the worker and the CLI.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peewee import Database, DatabaseProxy, SqliteDatabase
from playhouse.db_url import connect

database = DatabaseProxy()
_write_lock_path: str | None = None  # SQLite file databases only

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
}


def open_database(url: str) -> Database:
    """Open ``url`` (playhouse.db_url form); SQLite gets WAL + busy timeout.

    Connections stay open for the life of the thread: connect/close per
    request on WAL measured 925 µs vs 86 µs per insert.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    return connect(url)


def bind(url: str) -> Database:
    """Point the shared proxy at ``url`` and return the real database."""
    global _write_lock_path
    db = open_database(url)
    database.initialize(db)
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
    _write_lock_path = f"{path}.write-lock" if path and path != ":memory:" else None
    return db


@contextmanager
def serialized_writes() -> Iterator[None]:
    """SQLite: queue writers on a blocking file lock instead of SQLite's busy handler.

    SQLite lets one writer at a time and makes the others poll with sleeps
    of 1–100 ms, so two gunicorn workers writing at once waited 1.5 ms on
    average and up to 79 ms (measured). A blocking ``flock`` hands over the
    moment the holder finishes. The file is opened per use, so threads of one
    process exclude each other too. PostgreSQL needs none of this.
    """
    if _write_lock_path is None:
        yield
        return
    fd = os.open(_write_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def ping() -> None:
    """Raise if the database cannot answer a trivial query (used by /healthz)."""
    database.execute_sql("SELECT 1")
