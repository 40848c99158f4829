"""Database connection: one peewee proxy, bound at start-up, never at import.

Connecting at import time breaks gunicorn ``--preload`` (a forked worker
would share the parent's socket), so ``bind`` is called by the app factory,
the worker and the CLI.

Connections live as long as their thread (a gunicorn sync worker, the RQ
worker, the outbox sweeper), so they must outlive the database too: peewee
keeps handing out a psycopg connection the server closed, and after a
PostgreSQL restart every query failed with ``connection already closed``
until the process was restarted. ``RecoveringMixin`` (peewee's
``ReconnectMixin``) drops a connection the moment a statement finds it
broken, and the next statement connects anew; it costs nothing while
statements succeed (no ping per request).
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import structlog
from peewee import (
    Database,
    DatabaseProxy,
    InterfaceError,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
    _savepoint,  # subclassed: see _Savepoint
)
from playhouse.pool import PooledDatabase
from playhouse.shortcuts import ReconnectMixin

log = structlog.get_logger("database")

database = DatabaseProxy()
_write_lock_path: str | None = None  # SQLite file databases only

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
}

# A host that does not answer must mean a quick 503, not the OS's TCP timeout of minutes.
PG_CONNECT_TIMEOUT = 3

# SQLite result codes (primary codes: the low byte of an extended code) that mean
# "the file cannot be written now", not "this statement is wrong"...
SQLITE_UNAVAILABLE = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
})
# ...and those after which the connection itself is suspect: it may have been opened
# read-only, or lost its file. Reopening is cheap and picks up a repaired file.
SQLITE_REOPEN = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN})
# PostgreSQL error classes of an unusable server rather than a bad statement: insufficient
# resources (disk full, out of memory), system error (I/O). A shutdown (57P0x) closes the
# connection, which says enough; a statement timeout (57014) is no outage.
PG_UNAVAILABLE_CLASSES = frozenset({"53", "58"})


class Outage:
    """One error line when the database stops answering, one line when it answers again.

    Per process. Every request fails during an outage (each gets its own
    ``webhook.unavailable``); these two lines say when it began, why, and how
    long it lasted. A lost server ("connection") ends with the first statement
    that succeeds; a server or file that answers but cannot write ("storage":
    disk full, locked, read-only) ends with the first commit.
    """

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic start of the current outage
        self.kind: str | None = None
        self._lock = threading.Lock()

    def begin(self, kind: str, exc: BaseException) -> None:
        if self.since is not None:
            return
        with self._lock:
            if self.since is not None:
                return
            self.since, self.kind = time.monotonic(), kind
        err = _driver_error(exc)
        log.error("database.unavailable", kind=kind, error=type(err).__name__, detail=_first_line(err))

    def answered(self, committed: bool) -> None:
        if self.since is None or (self.kind == "storage" and not committed):
            return
        with self._lock:
            if self.since is None:
                return
            down, kind, self.since = time.monotonic() - self.since, self.kind, None
        log.warning("database.recovered", kind=kind, down_s=round(down, 1))


class RecoveringMixin(ReconnectMixin):  # type: ignore[misc]  # playhouse ships no type stubs (ReconnectMixin is Any)
    """Drop a connection the server (or the file system) broke; reconnect on the next statement.

    ReconnectMixin matches error messages, which libpq translates, and retries
    any statement outside a transaction, even a write whose fate is unknown.
    Here the driver's own state decides (psycopg marks a lost connection
    ``closed``), and only what cannot have changed anything is run again on
    the new connection: ``BEGIN``, a ``SELECT``, or a call the driver refused
    before sending. A failure inside a transaction is never retried (the
    request gets its 503 and LINE redelivers); the broken connection is dropped
    when that transaction rolls back. All of this runs only after a failure.
    """

    reconnect_errors = ()  # decided by _classify, not by message text

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = Outage()

    def _reconnect(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``execute_sql`` and ``begin`` come through here (ReconnectMixin)."""
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if not self._replace_stale(exc, func, args):
                raise
            try:
                result = func(*args, **kwargs)  # on a new connection
            except Exception as again:
                self._failed(again, drop=not self.in_transaction())
                raise
            log.info("database.reconnected")
        if self.outage.since is not None:
            self.outage.answered(committed=False)
        return result

    def commit(self) -> None:
        try:
            super().commit()
        except Exception as exc:
            self._failed(exc, drop=False)  # the transaction's rollback, which follows, drops it
            raise
        if self.outage.since is not None:
            self.outage.answered(committed=True)

    def rollback(self) -> None:
        try:
            if not self._rolled_back_already():
                super().rollback()
        finally:
            if not self.in_transaction() and self._doomed():
                self._drop()

    def savepoint(self) -> _savepoint:
        return _Savepoint(self)

    def _rolled_back_already(self) -> bool:
        """Nothing left to roll back: the connection died with its transaction. A ROLLBACK would
        only fail again, and its error would replace the real one in the logs."""
        conn = self._state.conn
        return conn is not None and bool(getattr(conn, "closed", False))

    def _replace_stale(self, exc: Exception, func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """True if the connection was broken before this call (say, the server restarted since the
        last one) and the call is safe to run again: the connection is dropped and no outage noted,
        because the retry will tell. Otherwise the failure is noted and False returned."""
        kind, broken = self._classify(exc)
        if broken and not self.in_transaction() and _safe_to_repeat(func, args, exc):
            self._drop()
            return True
        self._failed(exc, drop=not self.in_transaction(), classified=(kind, broken))
        return False

    def _failed(self, exc: Exception, drop: bool, classified: tuple[str | None, bool] | None = None) -> None:
        """Note an outage; drop a broken connection now, or once its transaction has rolled back."""
        kind, broken = classified or self._classify(exc)
        if kind is None:
            return
        self.outage.begin(kind, exc)
        if broken and drop:
            self._drop()
        elif broken:
            self._state.doomed = self._state.conn

    def _classify(self, exc: Exception) -> tuple[str | None, bool]:
        """(outage kind, or None for an ordinary error; whether this connection is beyond use)."""
        if not isinstance(exc, (OperationalError, InterfaceError)):
            return None, False
        conn = self._state.conn
        if conn is None:  # the connection could not be opened
            return "connection", False
        if getattr(conn, "closed", False):  # psycopg: the server or the network closed it
            return "connection", True
        pgcode = getattr(_driver_error(exc), "pgcode", None) or ""
        return ("storage", False) if pgcode[:2] in PG_UNAVAILABLE_CLASSES else (None, False)

    def _doomed(self) -> bool:
        conn = self._state.conn
        return conn is not None and (bool(getattr(conn, "closed", False))
                                     or getattr(self._state, "doomed", None) is conn)

    def _drop(self) -> None:
        """Close this thread's connection for good: never reused, never handed back to a pool."""
        self._state.doomed = None
        try:
            if isinstance(self, PooledDatabase):
                self.manual_close()
            else:
                self.close()
        except Exception:  # closing a dead connection may complain; it is gone either way
            self._state.reset()


class _Savepoint(_savepoint):
    """A savepoint that skips its ROLLBACK TO when the whole transaction is gone already."""

    def rollback(self, begin: bool = True) -> None:
        if not self.db._rolled_back_already():
            super().rollback(begin)


class SqliteRecoveringMixin(RecoveringMixin):
    """SQLite: a file that cannot be written is an outage; a connection that may have been
    opened read-only (or lost its file) is reopened.

    After some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite has rolled the
    whole transaction back itself; peewee's ROLLBACK would then fail with "no
    transaction is active" instead of saying "database or disk is full".
    """

    def _classify(self, exc: Exception) -> tuple[str | None, bool]:
        code = _sqlite_code(exc)
        return ("storage", code in SQLITE_REOPEN) if code in SQLITE_UNAVAILABLE else (None, False)

    def _rolled_back_already(self) -> bool:
        conn = self._state.conn
        return conn is not None and not conn.in_transaction


class RecoveringSqliteDatabase(SqliteRecoveringMixin, SqliteDatabase):
    """The bot's SQLite database (``open_database``)."""


_RECOVERING: dict[type[Database], type[Database]] = {SqliteDatabase: RecoveringSqliteDatabase}


def recovering(cls: type[Database]) -> type[Database]:
    """``cls`` with the recovering mixin that fits (PostgreSQL and SQLite classes, pooled or not)."""
    if cls not in _RECOVERING:
        if issubclass(cls, SqliteDatabase):
            mixin: type[RecoveringMixin] = SqliteRecoveringMixin
        elif issubclass(cls, PostgresqlDatabase):
            mixin = RecoveringMixin
        else:
            return cls  # its driver's "closed" flag is not one RecoveringMixin knows
        _RECOVERING[cls] = type(f"Recovering{cls.__name__}", (mixin, cls), {})
    return _RECOVERING[cls]


def open_database(url: str) -> Database:
    """Open ``url`` (playhouse.db_url form); SQLite gets WAL + busy timeout.

    Connections stay open for the life of the thread: connect/close per
    request on WAL measured 925 µs vs 86 µs per insert.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return RecoveringSqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    from playhouse import db_url  # every backend's module: loaded only for a URL that needs it (1.4 MB)

    cls = db_url.schemes.get(urlparse(url).scheme)
    params = db_url.parse(url)
    if cls is None or not params.get("database"):
        return cast(Database, db_url.connect(url))  # raises its own clear message
    if issubclass(cls, PostgresqlDatabase):
        params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    return recovering(cls)(**params)


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

    A lock file that cannot be opened (read-only or full file system) is the
    database being unavailable, as SQLite itself would say a moment later:
    ``OperationalError``, so the request gets a 503 rather than a 500.
    """
    if _write_lock_path is None:
        yield
        return
    try:
        fd = os.open(_write_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        error = OperationalError(f"SQLite write lock {_write_lock_path}: {exc.strerror}")
        outage = getattr(database.obj, "outage", None)
        if outage is not None:
            outage.begin("storage", error)
        raise error from exc
    _held.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        _held.discard(fd)
        os.close(fd)  # closing releases the lock (unless a forked child still holds a copy: see below)


# A flock belongs to the open file, shared with every process forked while it is held: RQ
# forks its scheduler while the worker's purge thread may hold the lock, and the child never
# closed its copy — every later SQLite write then waited forever. A child closes them at once.
_held: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextmanager
def checkpoints_between_batches() -> Iterator[Callable[[], None]]:
    """SQLite: a long job's own WAL is copied back by the job, between its batches, never inside
    anyone's write lock. Yields ``between()``, to call after each batch's transaction.

    SQLite checkpoints whenever a commit leaves the WAL past 1,000 pages, in the committing
    connection and so inside ``serialized_writes``: a purge deleting 340,000 rows made every one
    of its commits a checkpoint (15 ms each, every webhook queued behind it), and a webhook's
    own commit inherited the rest. Here the job's connection does not checkpoint on commit; after
    each batch, with the lock released, it runs a PASSIVE checkpoint (readers and writers go on)."""
    if not isinstance(database.obj, SqliteDatabase):
        yield lambda: None
        return
    database.execute_sql("PRAGMA wal_autocheckpoint=0")

    def between() -> None:
        database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")

    try:
        yield between
    finally:
        database.execute_sql("PRAGMA wal_autocheckpoint=1000")
        between()


WAL_CHECKPOINT_SECONDS = 1.0
_checkpointer: dict[str, Any] = {"pid": None, "every": None}  # this process's thread, if started


def checkpoint_in_background(every: float = WAL_CHECKPOINT_SECONDS) -> None:
    """SQLite: copy the WAL back into the database from a thread of this process, every
    ``every`` seconds, so that no webhook's commit does it. Idempotent; a forked child (gunicorn
    ``--preload``) starts its own. PostgreSQL: the thread finds nothing to do.

    Left to itself, SQLite checkpoints in the commit that takes the WAL past 1,000 pages: the
    webhook that made that commit copied all of them back before its answer. In ``bench.scale``
    those were the slowest events of every kind: the registration answer's p99 was 5.0–7.5 ms
    without this thread and 3.8–4.4 ms with it (four alternating SQLite runs). The thread's
    PASSIVE checkpoint waits for no one (readers and writers go on, the busy handler is never
    called); the 1,000 pages stay as the backstop, reached only if this thread falls behind."""
    if _checkpointer["pid"] == os.getpid():
        return
    _checkpointer.update(pid=os.getpid(), every=every)
    threading.Thread(target=_checkpoint_loop, args=(every,), name="wal-checkpoint", daemon=True).start()


def checkpoint_wal() -> tuple[int, int, int] | None:
    """One PASSIVE checkpoint of the database bound now (SQLite; ``None`` otherwise): (busy, WAL
    pages, pages copied back), on this thread's own connection, outside peewee's error handling
    (a failed checkpoint is not an outage of the webhook's database)."""
    db = database.obj
    if not isinstance(db, SqliteDatabase):
        return None
    row = db.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[no-untyped-call]  # peewee is untyped
    return int(row[0]), int(row[1]), int(row[2])


def _checkpoint_loop(every: float) -> None:
    while True:
        time.sleep(every)
        try:
            checkpoint_wal()
        except Exception as exc:  # the file moved or broke: the next tick opens it anew
            log.warning("wal.checkpoint_failed", error=type(exc).__name__, detail=_first_line(exc))
            try:
                database.close()
            except Exception:  # the connection was already unusable: nothing to close
                pass


def _checkpoint_in_child() -> None:
    if _checkpointer["pid"] is not None:
        _checkpointer["pid"] = None
        checkpoint_in_background(_checkpointer["every"])


os.register_at_fork(after_in_child=_checkpoint_in_child)


def refresh_statistics() -> None:
    """Let the query planner see the tables as they are now. SQLite never gathers statistics by
    itself (``PRAGMA optimize`` runs ANALYZE only where it is worth it, in milliseconds);
    PostgreSQL's autovacuum does, so there is nothing to do."""
    if isinstance(database.obj, SqliteDatabase):
        with serialized_writes():
            database.execute_sql("PRAGMA optimize")


def ping() -> None:
    """Raise if the database cannot answer a trivial query (used by /healthz).

    SQLite also answers reads from a file it can no longer write (a read-only
    mount), so the file and its directory (journal, lock file) must be
    writable too: two ``access`` calls, and no read-only connection is opened.
    """
    if _write_lock_path is not None:
        path = Path(_write_lock_path[: -len(".write-lock")])
        for target in (path, path.parent):
            if target.exists() and not os.access(target, os.W_OK):
                raise OperationalError(f"SQLite {target} is not writable")
    database.execute_sql("SELECT 1")


def _driver_error(exc: BaseException) -> BaseException:
    """The DB-API exception under a peewee one (peewee passes it as the first argument)."""
    if exc.args and isinstance(exc.args[0], BaseException):
        return exc.args[0]
    return exc.__cause__ or exc.__context__ or exc


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(_driver_error(exc), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def _safe_to_repeat(func: Callable[..., Any], args: tuple[Any, ...], exc: Exception) -> bool:
    """Can running ``func`` again change nothing twice? True for BEGIN, a SELECT, or a call
    the driver refused before sending anything (psycopg: InterfaceError, already closed)."""
    if getattr(func, "__name__", "") == "begin" or isinstance(exc, InterfaceError):
        return True
    sql = args[0] if args else None
    return isinstance(sql, str) and sql.lstrip()[:6].upper() == "SELECT"
