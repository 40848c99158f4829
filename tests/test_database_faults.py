"""The database goes away and comes back: the bot must come back with it, on its own.

PostgreSQL is our own throwaway cluster (``bench.servers.PostgresCluster``),
stopped with ``pg_ctl stop -m fast`` or a ``kill -9`` of the postmaster and
started again. The bot is served by one non-threaded werkzeug server in one
thread: like a gunicorn sync worker, one thread keeps one database connection
from request to request. SQLite's faults are real too: a write lock held by
another process, a read-only file system and a full disk (small tmpfs mounts;
skipped with the reason where mounting is not allowed), and ``PRAGMA
max_page_count`` for "database or disk is full" anywhere.

Every fault must answer 503 (never 500) with nothing written and the event's
dedupe marker released, so that LINE's redelivery is applied exactly once.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee
import pytest
import requests
import structlog
from flask import Flask
from rq import SimpleWorker
from rq.job import Job
from werkzeug.serving import make_server

import bot
from bench.servers import PostgresCluster, ServerUnavailable
from handlers import outbox, runtime
from handlers.logs import file_name as log_file_name
from simulator import events
from simulator.platform import PlatformState
from storage import db as storage_db
from storage import repo
from storage.models import Outbox, ProcessedEvent
from tests.actors import draft_of, jpeg
from tests.conftest import Bot, make_config, reset_database
from tests.test_profile_steps import walk_to

ALICE = "U" + "a1" * 16
CAROL = "U" + "c" * 32
HELLO = [{"type": "text", "text": "審査結果のお知らせです。"}]

OUTAGE_503_WITHIN = 1.0  # seconds: a 503 during the outage must be quick
RECOVERY_WITHIN = 5.0  # seconds from "PostgreSQL accepts connections" to /healthz 200


# --- serving like a gunicorn sync worker ---------------------------------------------------


class SyncWorker:
    """One non-threaded server in one thread: requests one after another on one database
    connection that stays open between them (create_app's gunicorn setting)."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=False)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.serve_forever(poll_interval=0.05)
        finally:  # as a worker process exits: its connection goes with it
            try:
                storage_db.database.close()
            except peewee.PeeweeException:
                pass

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@dataclass
class FaultBot(Bot):
    """``conftest.Bot`` served by a ``SyncWorker`` that a test can restart."""

    app: Flask | None = None
    worker: SyncWorker | None = None

    def restart_worker(self) -> None:
        """A new worker (thread, so a new connection), as gunicorn replaces a dead one."""
        assert self.worker is not None and self.app is not None
        self.worker.stop()
        self.worker = SyncWorker(self.app)
        self.url = self.worker.url
        self.line.webhook_url = self.url + "/callback"

    def healthz(self) -> requests.Response:
        return requests.get(self.url + "/healthz", timeout=5)

    def log_events(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in map(json.loads, self.log_lines()) if entry.get("event") == name]


@pytest.fixture
def make_bot(redis_url: str, platform_server: tuple[PlatformState, str],
             tmp_path: Path) -> Iterator[Callable[..., FaultBot]]:
    """Build the real bot on a database URL (and data dir), served by one ``SyncWorker``."""
    line, platform_url = platform_server
    made: list[FaultBot] = []

    def make(db_url: str, data_dir: Path | None = None) -> FaultBot:
        line.reset()
        reset_database(db_url)
        storage_db.database.close()
        config = make_config(redis_url, db_url, platform_url, data_dir or tmp_path)
        app = bot.create_app(config)  # close_db_after_request=False, as under gunicorn
        rt = runtime.current()
        rt.outbox_retry_intervals = (0, 0, 0, 0, 0)
        rt.worker_redis.flushdb()
        worker = SyncWorker(app)
        line.webhook_url = worker.url + "/callback"
        harness = FaultBot(url=worker.url, line=line, rt=rt, config=config, log_dir=Path(config.data_dir, "log"),
                           app=app, worker=worker)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        assert harness.worker is not None
        harness.worker.stop()
    try:
        storage_db.database.close()
    except peewee.PeeweeException:
        pass
    violations = list(line.violations)
    line.reset()
    assert not violations, f"the bot sent requests LINE would refuse: {violations}"


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster().init()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg(pg_cluster: PostgresCluster) -> PostgresCluster:
    """The cluster, running (a failed test may have left it stopped)."""
    if not pg_cluster.ready():
        pg_cluster.start()
    return pg_cluster


def pg_url(cluster: PostgresCluster, scheme: str) -> str:
    return cluster.url.replace("postgresql://", f"{scheme}://", 1)


def break_postgres(cluster: PostgresCluster, how: str) -> None:
    if how == "stop_fast":
        cluster.stop("fast")
    else:
        cluster.kill9()
    assert not cluster.ready()


def wait_healthy(harness: FaultBot, limit: float) -> float:
    """Seconds until /healthz says 200; fails after ``limit``."""
    started = time.monotonic()
    while True:
        if harness.healthz().status_code == 200:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise AssertionError(f"/healthz still not 200 {limit}s after the database came back")
        time.sleep(0.02)


def register_up_to_the_name(harness: FaultBot) -> None:
    """follow → agree → institution code: the registration works before the fault."""
    institution = repo.create_institution("復旧商工会", "よろず")
    harness.say(ALICE, "follow")
    harness.text(ALICE, "同意する")
    harness.text(ALICE, institution.code)
    assert draft_of(ALICE)["institution_id"] == institution.id


def post_timed(harness: FaultBot, event: dict[str, Any]) -> tuple[int, float]:
    started = time.monotonic()
    status = harness.post([event]).status_code
    return status, time.monotonic() - started


def assert_not_applied(harness: FaultBot, event: dict[str, Any], user: str, seq: int) -> None:
    """The failed attempt left nothing: no reply, no dedupe marker (so the redelivery runs)."""
    assert harness.texts_since(user, seq) == []
    assert not harness.rt.redis.exists(harness.rt.keys.event(event["webhookEventId"]))


def assert_applied_once(harness: FaultBot, event: dict[str, Any], user: str, seq: int) -> list[str]:
    """The redelivery runs once: one reply, one processed row; a further redelivery changes nothing."""
    assert harness.post([events.redelivery(event)]).status_code == 200
    texts = harness.texts_since(user, seq)
    assert texts, "the redelivered event got no answer"
    assert len(harness.line.deliveries_for(user, after=seq)) == 1
    assert harness.post([events.redelivery(event)]).status_code == 200
    assert len(harness.line.deliveries_for(user, after=seq)) == 1
    assert ProcessedEvent.select().where(ProcessedEvent.webhook_event_id == event["webhookEventId"]).count() == 1
    return texts


@pytest.mark.parametrize("scheme", ["postgresql", "postgres+pool"])
@pytest.mark.parametrize("how", ["stop_fast", "kill9"])
def test_postgres_restart_the_bot_recovers_and_the_redelivery_applies_once(pg, make_bot, scheme, how):
    harness = make_bot(pg_url(pg, scheme))
    register_up_to_the_name(harness)
    break_postgres(pg, how)

    seq = harness._seq(ALICE)
    event = harness.event(ALICE, "text", text="山田 太郎")
    status, took = post_timed(harness, event)
    assert status == 503 and took < OUTAGE_503_WITHIN, (status, took)
    assert_not_applied(harness, event, ALICE, seq)
    again, took_again = post_timed(harness, events.redelivery(event))  # still down: still a quick 503
    assert again == 503 and took_again < OUTAGE_503_WITHIN
    health = harness.healthz()
    assert health.status_code == 503 and health.json()["database"].startswith("down")

    pg.start()  # returns once PostgreSQL accepts connections
    recovered_in = wait_healthy(harness, RECOVERY_WITHIN)
    print(f"\n[{scheme} {how}] 503 in {took * 1000:.0f} ms / {took_again * 1000:.0f} ms during the outage; "
          f"/healthz 200 {recovered_in * 1000:.0f} ms after PostgreSQL accepted connections")

    texts = assert_applied_once(harness, event, ALICE, seq)
    assert any("フリガナ" in t for t in texts), texts
    assert draft_of(ALICE)["family_name"] == "山田"
    assert len(harness.log_events("database.unavailable")) == 1
    assert harness.log_events("database.unavailable")[0]["level"] == "error"
    assert len(harness.log_events("database.recovered")) == 1


def test_postgres_restart_while_idle_the_first_webhook_is_answered(pg, make_bot):
    """Nobody wrote during the outage: the worker's connection is stale, not known dead.
    The first webhook afterwards must work, not spend itself finding that out."""
    harness = make_bot(pg.url)
    register_up_to_the_name(harness)
    pg.stop("fast")
    pg.start()
    texts = harness.text(ALICE, "山田 太郎")
    assert any("フリガナ" in t for t in texts)
    assert draft_of(ALICE)["family_name"] == "山田"
    assert harness.log_events("database.unavailable") == []  # a stale connection replaced is no outage
    assert harness.log_events("database.reconnected")


def test_outbox_job_in_the_outage_is_retried_and_delivers_once(pg, make_bot):
    harness = make_bot(pg.url)
    harness.rt.outbox_retry_intervals = (1, 1, 1, 1, 1)
    row = repo.queue_push(CAROL, HELLO, "test")
    outbox.enqueue([row.id])
    pg.stop("fast")

    harness.drain()  # the RQ SimpleWorker runs the job: it fails on the database...
    queue = harness.rt.queue(runtime.OUTBOX_QUEUE, for_worker=True)
    [job_id] = queue.scheduled_job_registry.get_job_ids()  # ...and RQ schedules it again
    assert Job.fetch(job_id, connection=harness.rt.worker_redis).retries_left == 4
    assert pushes(harness) == []
    started = time.monotonic()
    with pytest.raises(peewee.OperationalError):
        outbox.sweep(older_than_seconds=0)  # the worker's sweeper thread fails quickly too
    assert time.monotonic() - started < OUTAGE_503_WITHIN

    pg.start()
    time.sleep(1.1)  # the retry's interval
    queues = [harness.rt.queue(runtime.EVENTS_QUEUE, for_worker=True), queue]
    SimpleWorker(queues, connection=harness.rt.worker_redis).work(burst=True, with_scheduler=True,
                                                                   logging_level="ERROR")
    assert len(pushes(harness)) == 1
    assert Outbox.get_by_id(row.id).status == "sent"
    assert outbox.sweep(older_than_seconds=0) == 0  # the sweeper works again, and finds nothing left
    harness.drain()
    assert len(pushes(harness)) == 1


def pushes(harness: FaultBot) -> list[dict[str, Any]]:
    return [d for d in harness.line.deliveries_for(CAROL) if d["via"] == "push"]


# --- SQLite -------------------------------------------------------------------------------

HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def test_sqlite_locked_by_another_process_is_503_then_the_redelivery_applies_once(make_bot, tmp_path, monkeypatch):
    monkeypatch.setitem(storage_db.SQLITE_PRAGMAS, "busy_timeout", 300)  # keep the test short
    path = tmp_path / "bot.db"
    harness = make_bot(f"sqlite:///{path}")
    register_up_to_the_name(harness)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        seq = harness._seq(ALICE)
        event = harness.event(ALICE, "text", text="山田 太郎")
        status, took = post_timed(harness, event)
        assert status == 503, status
        assert took < 0.3 + OUTAGE_503_WITHIN
        assert_not_applied(harness, event, ALICE, seq)
        assert "family_name" not in draft_of(ALICE)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert_applied_once(harness, event, ALICE, seq)
    assert draft_of(ALICE)["family_name"] == "山田"
    assert [e["level"] for e in harness.log_events("database.unavailable")] == ["error"]
    assert len(harness.log_events("database.recovered")) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk we may fill up or make read-only (root only)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); "
                    "the full-disk and read-only variants need one")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def remount(mountpoint: Path, mode: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], capture_output=True, text=True)
    assert done.returncode == 0, f"remount {mode}: {done.stderr}"


def fill(directory: Path) -> Path:
    """Write a file until the file system is full (ENOSPC); return it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_full_disk_is_503_for_sqlite_and_photos_and_the_redeliveries_apply_once(small_disk, make_bot):
    """Database, photos and logs share one small disk, which fills up."""
    harness = make_bot(f"sqlite:///{small_disk / 'bot.db'}", data_dir=small_disk)
    walk_to(harness, "photo_face", user=ALICE)
    files_root = small_disk / "files"
    files_before = stored_files(files_root)
    # An empty WAL, so the next commit must grow it: the write that meets the full disk.
    busy, _, _ = storage_db.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    filler = fill(small_disk)

    seq = harness._seq(ALICE)
    photo = harness.event(ALICE, "image", messageId=harness.line.add_content(jpeg("navy"), "image/jpeg"))
    status, _ = post_timed(harness, photo)
    assert status == 503, "the file store's ENOSPC is a 503, not a flow error or a 500"
    assert stored_files(files_root) == files_before  # no photo, no half-written temporary file
    text = harness.event(ALICE, "text", text="写真はあとで")
    status, _ = post_timed(harness, text)
    assert status == 503, "SQLite's 'database or disk is full' is a 503"
    assert_not_applied(harness, photo, ALICE, seq)
    assert_not_applied(harness, text, ALICE, seq)
    assert ProcessedEvent.select().where(ProcessedEvent.webhook_event_id.in_(
        [photo["webhookEventId"], text["webhookEventId"]])).count() == 0

    filler.unlink()
    assert_applied_once(harness, photo, ALICE, seq)
    [face] = [p for p in stored_files(files_root) if p not in files_before]
    assert draft_of(ALICE)["photos"]["face"] == face.name
    seq = harness._seq(ALICE)
    assert_applied_once(harness, text, ALICE, seq)
    assert harness.log_events("database.recovered"), "logging works again once there is room"


def test_read_only_file_system_is_503_then_the_redelivery_applies_once(small_disk, make_bot):
    """The database's disk turns read-only while a worker restarts (an ops mistake, or a
    file system remounted read-only after errors): 503, and the bot recovers with the disk."""
    harness = make_bot(f"sqlite:///{small_disk / 'bot.db'}")  # logs and photos elsewhere
    register_up_to_the_name(harness)
    harness.worker.stop()  # nothing may hold the disk open for writing while it is remounted
    storage_db.database.close()
    remount(small_disk, "ro")
    try:
        harness.restart_worker()
        seq = harness._seq(ALICE)
        event = harness.event(ALICE, "text", text="山田 太郎")
        status, took = post_timed(harness, event)
        assert status == 503 and took < OUTAGE_503_WITHIN, (status, took)
        assert not harness.rt.redis.exists(harness.rt.keys.event(event["webhookEventId"]))
        assert harness.healthz().status_code == 503
    finally:
        remount(small_disk, "rw")
    assert harness.healthz().status_code == 200
    assert_applied_once(harness, event, ALICE, seq)
    assert draft_of(ALICE)["family_name"] == "山田"


def test_log_file_on_a_full_disk_does_not_break_requests(make_bot, tmp_path):
    """Every log line fails with ENOSPC (/dev/full): the requests are answered all the same."""
    data_dir = tmp_path / "data"
    (data_dir / "log").mkdir(parents=True)
    today = time.strftime("%Y%m%d", time.gmtime())
    (data_dir / "log" / log_file_name("web", os.getpid(), today)).symlink_to("/dev/full")
    harness = make_bot(f"sqlite:///{tmp_path / 'bot.db'}", data_dir=data_dir)
    register_up_to_the_name(harness)
    texts = harness.text(ALICE, "山田 太郎")
    assert any("フリガナ" in t for t in texts)
    assert draft_of(ALICE)["family_name"] == "山田"


# --- the database layer alone ---------------------------------------------------------------


def test_sqlite_full_is_unavailable_and_the_next_commit_ends_the_outage(tmp_path):
    """``PRAGMA max_page_count``: a real SQLITE_FULL, "database or disk is full"."""
    db = storage_db.open_database(f"sqlite:///{tmp_path / 'full.db'}")
    db.execute_sql("CREATE TABLE blob (data BLOB)")
    (pages,) = db.execute_sql("PRAGMA page_count").fetchone()
    db.execute_sql(f"PRAGMA max_page_count = {pages}")
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(peewee.OperationalError, match="full"):
            with db.atomic():
                db.execute_sql("INSERT INTO blob VALUES (?)", (b"x" * 100_000,))
        assert db.execute_sql("SELECT count(*) FROM blob").fetchone() == (0,)  # nothing half written
        db.execute_sql("PRAGMA max_page_count = 100000")
        with db.atomic():
            db.execute_sql("INSERT INTO blob VALUES (?)", (b"x" * 100_000,))
    assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("database.")] == [
        ("database.unavailable", "error"), ("database.recovered", "warning")]
    db.close()


def test_sqlite_connection_opened_read_only_is_reopened_once_the_disk_is_writable(small_disk):
    """SQLite quietly opens a file it cannot write read-only; kept, that connection would
    refuse every write for good after the disk is repaired."""
    # A rollback journal, not WAL: a WAL database cannot even be opened on a read-only mount.
    db = storage_db.RecoveringSqliteDatabase(str(small_disk / "ro.db"), pragmas={"busy_timeout": 100})
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    db.close()
    remount(small_disk, "ro")
    try:
        assert db.execute_sql("SELECT count(*) FROM t").fetchone() == (0,)  # opened, read-only
        with pytest.raises(peewee.OperationalError, match="readonly"):
            with db.atomic():
                db.execute_sql("INSERT INTO t VALUES (1)")
        assert db.is_closed(), "the read-only connection must be dropped"
    finally:
        remount(small_disk, "rw")
    with db.atomic():
        db.execute_sql("INSERT INTO t VALUES (1)")
    assert db.execute_sql("SELECT count(*) FROM t").fetchone() == (1,)
    db.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres+pool"])
def test_postgres_connection_lost_inside_a_transaction_is_dropped_and_the_next_reconnects(pg, scheme):
    """The server ends the connection mid-transaction: that transaction fails (its request gets
    a 503), nothing of it is kept, and the next one runs on a new connection."""
    db = storage_db.open_database(pg_url(pg, scheme))
    db.execute_sql("CREATE TABLE IF NOT EXISTS lost (x INTEGER)")
    db.execute_sql("TRUNCATE lost")
    (pid,) = db.execute_sql("SELECT pg_backend_pid()").fetchone()
    with structlog.testing.capture_logs() as logs:
        with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
            with db.atomic():
                db.execute_sql("INSERT INTO lost VALUES (1)")
                killer = psycopg_connect(pg)
                killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
                killer.close()
                db.execute_sql("INSERT INTO lost VALUES (2)")
        assert db.is_closed(), "the dead connection must not be kept"
        with db.atomic():
            db.execute_sql("INSERT INTO lost VALUES (3)")
    assert db.execute_sql("SELECT x FROM lost ORDER BY x").fetchall() == [(3,)]
    assert [e["event"] for e in logs if e["event"].startswith("database.")] == [
        "database.unavailable", "database.recovered"]
    db.close()


def test_postgres_write_on_a_stale_connection_is_not_run_twice(pg):
    """Outside a transaction only what cannot have changed anything is repeated on the new
    connection; a write is left to its caller's retry (RQ, LINE's redelivery)."""
    db = storage_db.open_database(pg.url)
    db.execute_sql("CREATE TABLE IF NOT EXISTS stale (x INTEGER)")
    db.execute_sql("TRUNCATE stale")
    (pid,) = db.execute_sql("SELECT pg_backend_pid()").fetchone()
    killer = psycopg_connect(pg)
    killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
        db.execute_sql("INSERT INTO stale VALUES (1)")
    db.execute_sql("INSERT INTO stale VALUES (2)")  # a new connection
    (pid,) = db.execute_sql("SELECT pg_backend_pid()").fetchone()
    killer = psycopg_connect(pg)
    killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    assert db.execute_sql("SELECT x FROM stale").fetchall() == [(2,)]  # a read is simply repeated
    db.close()


def psycopg_connect(cluster: PostgresCluster) -> Any:
    import psycopg2

    conn = psycopg2.connect(cluster.url)
    conn.autocommit = True
    return conn


def test_a_process_forked_while_the_sqlite_write_lock_is_held_does_not_keep_it(tmp_path):
    """RQ forks its scheduler while the worker's purge thread may hold the write lock: the
    child must not keep the lock alive once the parent releases it."""
    import fcntl

    from storage import db as storage_db

    storage_db.bind(f"sqlite:///{tmp_path / 'fork.db'}")
    with storage_db.serialized_writes():
        child = os.fork()
        if child == 0:  # the forked child lives on (as RQ's scheduler does) without touching the lock
            time.sleep(3)
            os._exit(0)
    try:
        fd = os.open(f"{tmp_path / 'fork.db'}.write-lock", os.O_RDWR)
        try:
            deadline = time.monotonic() + 1.5  # the child closes its copy as soon as it runs
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free, the child still running
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, "the forked child kept the write lock"
                    time.sleep(0.02)
        finally:
            os.close(fd)
    finally:
        os.waitpid(child, 0)
