"""Structured JSON logs: stdout plus one file per process and day under ``var/log``.

Several gunicorn workers must not share a file, so each process writes
``bot-<name>-<pid>-<YYYYMMDD>.jsonl``; ``python bot.py logs`` merges them by
time. A new file each UTC day means old days are whole files that the
retention purge (``domain.retention``, ``log_days``) can delete by their
age while the process goes on writing today's.
Users appear only as a keyed pseudonym; no token, secret, bank number,
phone, e-mail, name or photo is ever passed to a log call.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import structlog

_PSEUDONYM_KEY = b"unset"


_PSEUDONYMS: dict[str, str] = {}  # recent users' pseudonyms: an event names its user in several lines
_PSEUDONYMS_KEPT = 4096


def pseudonym(line_user_id: str | None) -> str | None:
    """Stable, non-reversible id for a LINE user in logs (keyed HMAC)."""
    if not line_user_id:
        return None
    known = _PSEUDONYMS.get(line_user_id)
    if known is None:
        known = "u_" + hmac.new(_PSEUDONYM_KEY, line_user_id.encode(), hashlib.sha256).hexdigest()[:12]
        if len(_PSEUDONYMS) >= _PSEUDONYMS_KEPT:
            _PSEUDONYMS.clear()
        _PSEUDONYMS[line_user_id] = known
    return known


def file_name(process_name: str, pid: int, day: str) -> str:
    """``bot-<name>-<pid>-<YYYYMMDD>.jsonl``: the file a process writes on a UTC day."""
    return f"bot-{process_name}-{pid}-{day}.jsonl"


def _utc_day(day_number: int) -> str:
    """``YYYYMMDD`` of a day counted from the epoch (UTC)."""
    return time.strftime("%Y%m%d", time.gmtime(day_number * 86400))


class _JsonLinesFile:
    """Appends one line per event to this process's file of the day.

    The file is (re)opened whenever the pid changes, so gunicorn workers
    forked from a ``--preload`` master each get their own file, and when the
    UTC date changes, so yesterday's file is closed for good.
    """

    def __init__(self, log_dir: Path, process_name: str):
        self.log_dir = log_dir
        self.process_name = process_name
        self.pid = -1
        self.day = -1  # days since the epoch, UTC
        self.fh: TextIO | None = None

    @property
    def path(self) -> Path:
        return self.log_dir / file_name(self.process_name, os.getpid(), _utc_day(int(time.time() // 86400)))

    def write(self, line: str) -> None:
        day = int(time.time() // 86400)  # cheap enough for every line; the name is formatted once a day
        if self.pid != os.getpid() or self.day != day or self.fh is None:
            old, self.fh = self.fh, None
            if old is not None and self.pid == os.getpid():  # yesterday's (a forked child leaves its parent's)
                with contextlib.suppress(OSError):
                    old.close()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.fh = (self.log_dir / file_name(self.process_name, os.getpid(), _utc_day(day))).open(
                "a", encoding="utf-8", buffering=1)
            self.pid, self.day = os.getpid(), day
        self.fh.write(line + "\n")


# JSON allows these raw inside strings, but str.splitlines() and many log tools break lines at them.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


# Where this process's lines go; ``configure`` replaces the contents, never the list.
_SINKS: list[Any] = []


def _render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
    """The last processor: one JSON line, written to every sink of this process."""
    line = json.dumps(event_dict, ensure_ascii=False, default=str, separators=(",", ":"))
    if not line.isascii():  # one record, one line, for every reader: escape Unicode line breaks
        line = line.translate(_LINE_BREAKS)
    for f in _SINKS:
        try:
            f.write(line)
        except (OSError, ValueError):
            pass
    return line


class _Stdout:
    def write(self, line: str) -> None:
        sys.stdout.write(line + "\n")


def configure(signing_key: str, log_dir: str | Path | None, process_name: str = "web", stdout: bool = True) -> Path | None:
    """Point this process's logs at its sinks and key; returns the file path written to.

    structlog itself is configured once per process, with its loggers cached on first
    use (a module's logger is otherwise rebuilt on every call, ~5 µs a line); a later
    call (a test, the worker) swaps the sinks and the key, which every logger reads."""
    global _PSEUDONYM_KEY
    _PSEUDONYM_KEY = hashlib.sha256(b"log-pseudonym:" + signing_key.encode()).digest()
    _PSEUDONYMS.clear()
    sinks: list[Any] = [_Stdout()] if stdout else []
    path = None
    if log_dir is not None:
        sink = _JsonLinesFile(Path(log_dir), process_name)
        sinks.append(sink)
        path = sink.path
    _SINKS[:] = sinks
    if not structlog.is_configured() or _render not in structlog.get_config()["processors"]:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                _render,
            ],
            logger_factory=structlog.ReturnLoggerFactory(),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            cache_logger_on_first_use=True,
        )
    return path


# --- reading them back (python bot.py logs) -------------------------------------------

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _parse_time(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def matches(
    entry: dict[str, Any],
    user: str | None = None,
    flow: str | None = None,
    level: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> bool:
    if user and entry.get("user") not in (user, pseudonym(user)) and entry.get("to") not in (user, pseudonym(user)):
        return False  # the user's own lines, and pushes to them
    if flow and entry.get("flow") != flow:
        return False
    if level and LEVELS.get(str(entry.get("level", "info")), 20) < LEVELS.get(level, 20):
        return False
    if since or until:
        try:
            at = _parse_time(str(entry.get("ts", "")))
        except ValueError:
            return False
        if since and at < since:
            return False
        if until and at > until:
            return False
    return True


def read_entries(log_dir: str | Path) -> list[dict[str, Any]]:
    """All entries of every process file, merged by timestamp."""
    entries: list[dict[str, Any]] = []
    for path in sorted(Path(log_dir).glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
    entries.sort(key=lambda e: str(e.get("ts", "")))
    return entries


class _NewLines:
    """Reads what was appended to every process file since the last call.

    A line still being written (no newline yet) waits for the next call, so a
    reader never sees half an entry. ``from_end`` skips what is already there.
    """

    def __init__(self, log_dir: str | Path, *, from_end: bool):
        self.log_dir = Path(log_dir)
        self.offsets: dict[Path, int] = (
            {p: p.stat().st_size for p in self.log_dir.glob("*.jsonl")} if from_end else {})

    def read(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for path in sorted(self.log_dir.glob("*.jsonl")):
            start = self.offsets.get(path, 0)
            try:
                with path.open("rb") as fh:
                    fh.seek(start)
                    chunk = fh.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self.offsets[path] = start + len(complete)
            for line in complete.decode("utf-8", "replace").split("\n"):
                if not line:
                    continue
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        entries.sort(key=lambda e: str(e.get("ts", "")))
        return entries


def follow(log_dir: str | Path, poll: float = 0.5) -> Iterator[dict[str, Any]]:
    """Entries written to any process file from now on, as they come (tail -f for all
    processes). "Now" is this call, not the first ``next()``."""
    reader = _NewLines(log_dir, from_end=True)

    def entries() -> Iterator[dict[str, Any]]:
        while True:
            yield from reader.read()
            time.sleep(poll)

    return entries()


class LogTail:
    """The recent entries of every process file, numbered, for a poller.

    The local chat page's ops panel asks "what was logged for this user since
    entry N?" every second; re-reading whole files each time would grow with
    the demo's age, so this keeps file offsets and only the last ``keep``
    entries. Thread-safe: the simulator serves its pages from threads.
    """

    def __init__(self, log_dir: str | Path, keep: int = 2000):
        self._reader = _NewLines(log_dir, from_end=False)
        self._recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=keep)
        self._count = 0
        self._lock = threading.Lock()

    def since(self, after: int, user: str | None = None, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        """Entries numbered above ``after``, at most the last ``limit``; and
        the number to pass as ``after`` next time. With ``user`` (a LINE user
        id or pseudonym): the entries about them — as the user, as the
        recipient of a push, or sharing a request id with one of those."""
        with self._lock:
            for entry in self._reader.read():
                self._count += 1
                self._recent.append((self._count, entry))
            if user is None:
                found = [e for n, e in self._recent if n > after]
            else:
                # A request's other lines (the reply call, say) carry its
                # request_id but not the user: they belong to this user too.
                mine = {n for n, e in self._recent if matches(e, user=user)}
                requests = {e["request_id"] for n, e in self._recent if n in mine and e.get("request_id")}
                found = [e for n, e in self._recent
                         if n > after and (n in mine or (e.get("request_id") in requests))]
            return found[-limit:], self._count
