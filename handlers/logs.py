"""Structured JSON logs: stdout plus one file per process under ``var/log``.

Several gunicorn workers must not share a file, so each process writes
``bot-<name>-<pid>.jsonl``; ``python bot.py logs`` merges them by time.
Users appear only as a keyed pseudonym; no token, secret, bank number,
phone, e-mail, name or photo is ever passed to a log call.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import structlog

_PSEUDONYM_KEY = b"unset"


def pseudonym(line_user_id: str | None) -> str | None:
    """Stable, non-reversible id for a LINE user in logs (keyed HMAC)."""
    if not line_user_id:
        return None
    return "u_" + hmac.new(_PSEUDONYM_KEY, line_user_id.encode(), hashlib.sha256).hexdigest()[:12]


class _JsonLinesFile:
    """Appends one line per event to ``bot-<name>-<pid>.jsonl``.

    The file is (re)opened whenever the pid changes, so gunicorn workers
    forked from a ``--preload`` master each get their own file.
    """

    def __init__(self, log_dir: Path, process_name: str):
        self.log_dir = log_dir
        self.process_name = process_name
        self.pid = -1
        self.fh: TextIO | None = None

    @property
    def path(self) -> Path:
        return self.log_dir / f"bot-{self.process_name}-{os.getpid()}.jsonl"

    def write(self, line: str) -> None:
        if self.pid != os.getpid() or self.fh is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("a", encoding="utf-8", buffering=1)
            self.pid = os.getpid()
        self.fh.write(line + "\n")


def _tee(files: list[Any]) -> Any:
    def processor(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        line = json.dumps(event_dict, ensure_ascii=False, default=str, separators=(",", ":"))
        for f in files:
            try:
                f.write(line)
            except (OSError, ValueError):
                pass
        return line

    return processor


class _Stdout:
    def write(self, line: str) -> None:
        sys.stdout.write(line + "\n")


def configure(signing_key: str, log_dir: str | Path | None, process_name: str = "web", stdout: bool = True) -> Path | None:
    """Set up structlog once per process; returns the file path written to."""
    global _PSEUDONYM_KEY
    _PSEUDONYM_KEY = hashlib.sha256(b"log-pseudonym:" + signing_key.encode()).digest()
    sinks: list[Any] = [_Stdout()] if stdout else []
    path = None
    if log_dir is not None:
        sink = _JsonLinesFile(Path(log_dir), process_name)
        sinks.append(sink)
        path = sink.path
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _tee(sinks),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
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
    if user and entry.get("user") not in (user, pseudonym(user)):
        return False
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


def follow(log_dir: str | Path, poll: float = 0.5) -> Iterator[dict[str, Any]]:
    """Yield new entries from every file as they are written (tail -f for all processes)."""
    offsets: dict[Path, int] = {p: p.stat().st_size for p in Path(log_dir).glob("*.jsonl")}
    while True:
        for path in sorted(Path(log_dir).glob("*.jsonl")):
            start = offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(start)
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
            offsets[path] = start + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
        time.sleep(poll)
