"""The chaos run (``make chaos``, bench/chaos.py) still runs: one cheap fault, quick.

It starts its own PostgreSQL cluster and redis-server (bench/servers.py), so
it skips with the reason where those binaries are not installed. It checks
the harness, not the bot: the last line is JSON with the fault's row and
its figures, and the fault ran (no error row); whether the bot met the
requirement is the chaos run's business.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAULT = "redelivery-x3"


def test_chaos_quick_run_prints_the_row_as_json() -> None:
    from bench.servers import ServerUnavailable, postgres_bin, redis_server_bin

    try:
        postgres_bin()
        redis_server_bin()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    done = subprocess.run([sys.executable, "-m", "bench.chaos", "--only", FAULT, "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode in (0, 1), f"exit {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-2000:]
    summary = json.loads(lines[-1])
    row = summary["faults"][FAULT]
    assert row["error"] is None, row
    for key in ("sent", "answered", "lost", "duplicated", "recover_s", "ok", "required"):
        assert key in row, (key, row)
    assert row["sent"] > 0 and row["answered"] + row["lost"] == row["sent"], row
    assert summary["failed"] == ([] if row["ok"] else [FAULT])
    assert (done.returncode == 0) == row["ok"]
