"""Long jobs copy their own SQLite WAL back between batches, outside the write lock.

SQLite checkpoints in whichever connection commits past 1,000 WAL pages, inside
``serialized_writes``: a purge of 340,000 event ids made each of its commits a
15 ms checkpoint that every webhook queued behind, and left webhooks the rest.
Webhooks do not copy it back either: a thread of each web and worker process does,
every second (``checkpoint_in_background``), so the commit that crossed 1,000 pages
no longer pays for all of them. These tests pin the mechanism (what it does to the
connection and the WAL), not a timing; ``bench.scale`` measures what it does (p99).
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from peewee import SqliteDatabase

from domain import retention
from program import load_program
from storage import db as storage_db
from storage.db import checkpoints_between_batches, database
from storage.files import EncryptedFileStore
from storage.models import ProcessedEvent, utcnow
from tests.conftest import TEST_CRYPTO

PROGRAM = load_program()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def sqlite_only(database: str) -> str:
    if not isinstance(storage_db.database.obj, SqliteDatabase):
        pytest.skip("PostgreSQL has no WAL of ours to copy back")
    return database


def _autocheckpoint() -> int:
    return int(database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0])


def _main_file_bytes(url: str) -> int:
    """The database file itself: it grows only when the WAL is copied back into it."""
    return os.path.getsize(url[len("sqlite:///"):])


def _insert_events(n: int, at: datetime) -> None:
    with storage_db.serialized_writes(), database.atomic():
        ProcessedEvent.insert_many([(f"E{i:06d}", "U1", at) for i in range(n)],
                                   fields=[ProcessedEvent.webhook_event_id, ProcessedEvent.line_user_id,
                                           ProcessedEvent.processed_at]).execute()


def test_the_job_does_not_checkpoint_on_commit_and_copies_back_between_batches(sqlite_only):
    assert _autocheckpoint() == 1000
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _main_file_bytes(sqlite_only)
    with checkpoints_between_batches() as between:
        assert _autocheckpoint() == 0
        _insert_events(20000, utcnow())  # far past 1,000 WAL pages: a commit would have copied it back
        assert _main_file_bytes(sqlite_only) == before  # the job's commit left it in the WAL…
        between()  # …and the job copies it back itself, with the lock released
        copied = _main_file_bytes(sqlite_only)
        assert copied > before
    assert _autocheckpoint() == 1000  # the connection is itself again


def test_a_purge_copies_its_wal_back_after_its_batches(sqlite_only, tmp_path):
    _insert_events(2500, utcnow() - timedelta(days=400))
    store = EncryptedFileStore(tmp_path / "files", TEST_CRYPTO)
    calls = []
    real = retention.checkpoints_between_batches

    @contextmanager
    def counted():  # our own hook, counted: how often the purge copies its WAL back
        with real() as between:
            yield lambda: (calls.append(1), between())

    retention.checkpoints_between_batches = counted
    try:
        done = retention.purge(PROGRAM, store, None, utcnow(), batch=500)
    finally:
        retention.checkpoints_between_batches = real
    assert done.processed_events == 2500
    assert len(calls) >= 5  # after each of the five batches (and the audit line)
    assert _autocheckpoint() == 1000


def test_a_sqlite_purge_holds_the_write_lock_for_small_batches(sqlite_only, tmp_path):
    """Every batch holds SQLite's one write lock while webhooks wait: a purge left to its own
    batch size deletes in batches of ``SQLITE_BATCH`` rows."""
    _insert_events(250, utcnow() - timedelta(days=400))
    store = EncryptedFileStore(tmp_path / "files", TEST_CRYPTO)
    sizes: list[int] = []
    real = retention.serialized_writes

    @contextmanager
    def measured():  # each batch's transaction, with the event ids still there before it
        before = ProcessedEvent.select().count()
        with real():
            yield
        sizes.append(before - ProcessedEvent.select().count())

    retention.serialized_writes = measured
    try:
        done = retention.purge(PROGRAM, store, None, utcnow())
    finally:
        retention.serialized_writes = real
    assert done.processed_events == 250
    assert [n for n in sizes if n] == [retention.SQLITE_BATCH, retention.SQLITE_BATCH, 50]


def test_postgresql_is_left_alone(database):
    with checkpoints_between_batches() as between:
        between()  # nothing to do, nothing raised, on either database
    if not isinstance(storage_db.database.obj, SqliteDatabase):
        assert storage_db.checkpoint_wal() is None  # the background thread finds nothing to do


def test_the_background_checkpoint_copies_back_what_webhooks_left_in_the_wal(sqlite_only):
    """Webhooks' commits stay in the WAL (under 1,000 pages SQLite would not copy them back
    either); one tick of the background thread copies every page back, readers and writers
    going on."""
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    for n in range(20):  # twenty small commits, as twenty webhooks make them
        with storage_db.serialized_writes(), database.atomic():
            ProcessedEvent.create(webhook_event_id=f"W{n:04d}", line_user_id="U1", processed_at=utcnow())
    busy, pages, copied = storage_db.checkpoint_wal()
    assert busy == 0 and pages >= 20 and copied == pages  # every commit's pages were still in the WAL
    assert storage_db.checkpoint_wal() == (0, pages, pages)  # nothing new since


def test_one_checkpoint_thread_per_process_and_a_forked_child_starts_its_own(tmp_path):
    code = f"""
import os, sys, threading, time
from storage import db
db.bind("sqlite:///{tmp_path / 'c.db'}")
db.checkpoint_in_background(0.05)
db.checkpoint_in_background(0.05)
named = lambda: sum(t.name == "wal-checkpoint" for t in threading.enumerate())
assert named() == 1, named()
db.database.execute_sql("CREATE TABLE t (x)")
db.database.execute_sql("INSERT INTO t VALUES (1)")
time.sleep(0.5)
busy, pages, copied = db.database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
assert pages == copied, (pages, copied)  # the thread had copied everything back already
pid = os.fork()
if pid == 0:
    time.sleep(0.1)
    os._exit(0 if named() == 1 else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.strip() == "0", out.stdout  # the child has its own thread
