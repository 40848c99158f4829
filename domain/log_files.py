"""Log files past their days: one per process and UTC day (``<process>-<pid>-<YYYYMMDD>.jsonl``),
deleted by the daily purge (``domain.retention``); today's never, whatever its time stamp."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

LOG_DAY = re.compile(r"-(\d{8})\.jsonl$")


def delete_old_logs(log_dir: Path, now: datetime, days: int, dry_run: bool) -> int:
    """Delete ``*.jsonl`` files last written before the cut-off; never one named for today (UTC)."""
    if not log_dir.is_dir():
        return 0
    cutoff = (now - timedelta(days=days)).replace(tzinfo=timezone.utc).timestamp()
    today = f"{now:%Y%m%d}"
    removed = 0
    for path in sorted(log_dir.glob("*.jsonl")):
        day = LOG_DAY.search(path.name)
        try:
            if (day and day.group(1) >= today) or path.stat().st_mtime >= cutoff:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:  # another worker's purge got there first
            continue
        removed += 1
    return removed
