"""Chaos run: the bot under faults, with LINE-like redelivery, on servers of its own.

    python -m bench.chaos                        # every fault (make chaos)
    python -m bench.chaos --quick                # smaller counts, shorter give-up
    python -m bench.chaos --only pg-stop,malformed
    python -m bench.chaos --list
    python -m bench.chaos --only ordering --order-gap-ms 2   # a user's requests 2 ms apart

Every fault gets a fresh stack (bench/chaos_rig.py): its own PostgreSQL
cluster and Redis (or primary + replica + 3 sentinels), started from the
installed binaries on free loopback ports in a temporary directory and
removed afterwards (also on Ctrl-C / SIGTERM); the bot under gunicorn with
2 sync workers (4 for ``ordering``), the RQ worker (``bot.py worker``), and
the fake LINE platform in a thread of this process. The machine's shared
Redis and PostgreSQL are never touched.

Load (bench/chaos_load.py, bench/chaos_users.py) is LINE-like: signed bodies, a 5xx / timeout /
broken connection redelivered with the same ``webhookEventId`` and
``isRedelivery: true`` after 0.5, 1, 2, 4, 8, 8 … s, given up 60 s (``--quick``:
20 s) after the first attempt. Figures come from the effects only:

* answered — the event's ``ProcessedEvent`` row exists, or its reply (by reply
  token) / a push to its user reached the platform;
* lost — neither, after redelivery gave up and the queues drained;
* duplicated — a reply token used twice, or more pushes to a user than
  events of theirs that went unreplied;
* max time to recover — per fault, stated in its ``recover_measures``.

The faults themselves are in bench/chaos_faults.py (servers going away, Redis
hung, a worker killed) and bench/chaos_events.py (ordering, malformed bodies,
redelivery ×3, LINE refusing pushes); bench/README.md has the table of what
each does and requires.

A table is printed, then which faults missed their requirement; the LAST
line is one JSON object with every row. Exit status 1 if any fault missed
its requirement or could not run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/chaos.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos_events import malformed, ordering, push_failures, redelivery_x3  # noqa: E402
from bench.chaos_faults import (  # noqa: E402
    Opts,
    Row,
    pg_kill9,
    pg_stop,
    redis_hang,
    redis_kill9_aof,
    redis_kill9_noaof,
    sentinel_failover,
    sentinel_kill_primary,
    worker_kill,
)
from bench.chaos_rig import cleanup  # noqa: E402
from bench.common import install_sigterm_as_interrupt  # noqa: E402

FAULTS: dict[str, Callable[[Opts], Row]] = {
    "pg-stop": pg_stop,
    "pg-kill9": pg_kill9,
    "ordering": ordering,
    "redis-hang": redis_hang,
    "worker-kill": worker_kill,
    "malformed": malformed,
    "sentinel-failover": sentinel_failover,
    "sentinel-kill-primary": sentinel_kill_primary,
    "redis-kill9-aof": redis_kill9_aof,
    "redis-kill9-noaof": redis_kill9_noaof,
    "redelivery-x3": redelivery_x3,
    "push-failures": push_failures,
}


def run_one(name: str, opts: Opts) -> Row:
    """One fault; whatever goes wrong becomes an error row, never the end of the run."""
    started = time.monotonic()
    try:
        row = FAULTS[name](opts)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        row = Row(name, ok=False, error=f"{type(exc).__name__}: {str(exc)[:400]}")
        row.notes = f"ERROR {row.error}"
        row.extra["traceback"] = traceback.format_exc(limit=4)[-1500:]
    row.extra["fault_run_s"] = round(time.monotonic() - started, 1)
    return row


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def table(rows: list[Row]) -> str:
    head = ["fault", "sent", "answered", "lost", "dup", "recover_s", "ok", "notes"]
    lines = [[r.fault, fmt(r.sent), fmt(r.answered), fmt(r.lost), fmt(r.duplicated), fmt(r.recover_s),
              "ok" if r.ok else ("ERROR" if r.error else "FAIL"), r.notes[:110]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def as_json(row: Row) -> dict[str, Any]:
    extra = {k: v for k, v in row.extra.items() if k != "traceback"}
    return {"sent": row.sent, "answered": row.answered, "lost": row.lost, "duplicated": row.duplicated,
            "recover_s": row.recover_s, "ok": row.ok, "required": row.required, "notes": row.notes,
            "error": row.error, **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated fault names (see --list)")
    parser.add_argument("--quick", action="store_true", help="smaller counts and a 20 s redelivery give-up")
    parser.add_argument("--list", action="store_true", help="print the fault names and exit")
    parser.add_argument("--order-gap-ms", type=float, default=10.0,
                        help="ordering: ms between one user's requests (default 10; smaller is harsher)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs of every stack)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(FAULTS))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(FAULTS)}")

    from bench.webhook import code_version

    tmp = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    opts = Opts(tmp=tmp, quick=args.quick, order_gap_ms=args.order_gap_ms)
    undo = install_sigterm_as_interrupt()
    started = time.monotonic()
    rows: list[Row] = []
    print(f"bench.chaos: {len(names)} fault(s){' (quick)' if args.quick else ''}; tmp={tmp}\n"
          f"code: {code_version()}", flush=True)
    try:
        for name in names:
            print(f"-- {name} …", flush=True)
            row = run_one(name, opts)
            rows.append(row)
            print(f"   {row.fault}: sent={row.sent} answered={row.answered} lost={row.lost} dup={row.duplicated} "
                  f"recover_s={fmt(row.recover_s)} → {'ok' if row.ok else 'FAIL'}: {row.notes}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; the current fault's servers were stopped", file=sys.stderr)
        return 130
    finally:
        undo()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        cleanup(tmp, args.keep_tmp)
    run_s = round(time.monotonic() - started, 1)
    print("\n== chaos ==")
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        print("\nrequirements NOT met:")
        for r in failed:
            print(f"  {r.fault}: {r.notes}\n      required: {r.required or '-'}")
            for line in r.extra.get("bot_errors", [])[:3]:
                print(f"      bot log: {line}")
    else:
        print("\nall requirements met")
    print(f"run took {run_s:.0f}s")
    summary = {"faults": {r.fault: as_json(r) for r in rows}, "failed": [r.fault for r in failed],
               "ok": not failed, "run_s": run_s, "quick": args.quick, "code": code_version()}
    print(json.dumps(summary, ensure_ascii=False, default=str), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
