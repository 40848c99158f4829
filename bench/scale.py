"""National scale (issue 13): the bot's cost per event, command and job at 10, 1,000 and 10,000 experts.

    make bench-scale                                   # sizes 10,1000,10000 on SQLite and PostgreSQL
    python -m bench.scale --quick                      # smoke run: sizes 10,200
    python -m bench.scale --sizes 10,1000 --db sqlite

For every database and size: a fresh database (a SQLite file; a database of
our own PostgreSQL cluster from ``bench.servers``) seeded in bulk through the
real models (``bench.scale_seed``), then the bot under gunicorn (2 workers)
with the RQ worker, its own redis-server and the contract-checked fake LINE
platform (``bench.scale_measure``). A database's sizes are all up at once:
events and commands are measured in rounds that visit the sizes in turn, so
the VM's speed, which drifts over minutes, weighs on every size alike (sizes
measured one after the other put the drift into the ratio); the jobs follow,
size after size. On each:

* webhook events — a registration answer (氏名), a check-in location, a
  report answer (相談内容) — gunicorn worker CPU ms per event and p99;
* every reviewer and secretariat command as that role through a signed
  webhook: median time to the 200 with its reply delivered, and whether the
  reply fits one LINE reply (5 messages, 5,000 characters, Flex sizes; the
  platform's contract checks refuse what LINE would);
* ``bot.py export fees|zengin`` for the busiest month, ``purge`` and
  ``conditions announce`` (a program file with a new conditions version) with
  the pushes drained by the worker: time, the CLI's peak RSS and the LINE
  API calls the announce took; a steady registration load runs before
  (idle) and during these jobs: 503s and p99;
* memory: Redis bytes per session and per dedupe marker, gunicorn worker
  RSS after the run, the RQ worker's RSS at the start and the end.

Targets (issue 13) are judged on the ratio largest size / smallest size of
one run and on the absolute figures at the largest size. The output is a
table, the failed targets, and as its last line one JSON object. The exit
status is 0 unless ``--strict`` and a target failed (or the run itself broke).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, install_sigterm_as_interrupt, max_worker_rss_mb, percentile  # noqa: E402
from bench.scale_measure import (  # noqa: E402
    Line,
    PhaseResult,
    ScaleStack,
    Sent,
    SteadyLoad,
    announce_program,
    merge,
    outbox_last_id,
    outbox_pending,
    pending_reasons,
    phase_across,
    run_cli,
)
from bench.scale_seed import PIN, REPORT_TEXT, Seeded, arm_probes, line_id, seed  # noqa: E402
from bench.scale_verdicts import items_for, table  # noqa: E402
from bench.servers import PostgresCluster, ServerUnavailable  # noqa: E402
from bench.webhook import code_version, session_bytes  # noqa: E402


@dataclass
class SizeRun:
    """Everything measured at one database and size."""

    db: str
    size: int
    seeded: Seeded
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- one size ----------------------------------------------------------------------------------


def near(metres: float, bearing: float) -> tuple[float, float]:
    from geopy.distance import geodesic

    p = geodesic(meters=metres).destination(PIN, bearing)
    return p.latitude, p.longitude


def summarise(result: PhaseResult, expect: str | None, errors: list[str]) -> dict[str, Any]:
    errs = result.errors(expect)
    errors += [f"{result.name}: {e}" for e in errs[:3]]
    slowest = sorted(range(len(result.sent)), key=lambda k: -result.sent[k].ms)[:3]
    return {"cpu_ms": round(result.cpu_ms, 2), "p50_ms": round(result.p(50), 1), "p99_ms": round(result.p(99), 1),
            "n": len(result.sent), "errors": len(errs),
            "slowest": [[k, round(result.sent[k].ms, 1)] for k in slowest]}  # [which event (in order), ms]


@dataclass
class Live:
    """One size, seeded, with its stack up: the sizes of a database are measured in turn."""

    run: SizeRun
    stack: ScaleStack
    line: Line
    url: str
    rq_start_mb: float = 0.0


def in_turn(lives: list[Live], round_no: int) -> list[Live]:
    """The sizes for one round: forwards, then backwards, so no size is always measured first."""
    return lives if round_no % 2 == 0 else lives[::-1]


def use_database(url: str) -> None:
    """Point this process's models at one size's database (to arm its probes, read its outbox)."""
    from storage import db as storage_db

    if storage_db.database.obj is not None:
        storage_db.database.close()
    storage_db.bind(url)


def measure_events(lives: list[Live], program: Any, samples: int) -> None:
    """A registration answer, a check-in location, a check-out location and a report answer,
    ``samples`` times each at every size. Each step of a round runs at every size, event by
    event in turn (the sizes forwards, then backwards), before the next step: the VM's speed
    drifts over minutes and stalls for some milliseconds now and then, and sizes measured one
    after another put that into the ratio (and into the p99 of the size a stall met)."""
    probes = max(1, min(len(live.run.seeded.probes) for live in lives))
    rounds = max(1, math.ceil(samples / probes))
    parts: dict[tuple[int, str], list[PhaseResult]] = {}
    lat_in, lng_in = near(40, 0)
    lat_out, lng_out = near(60, 90)

    def texts(live: Live, users: list[str], kind: str, text: str | None) -> list[Callable[[], Sent]]:
        return [partial(live.line.send, u, kind, text=text) for u in users]

    def at(live: Live, users: list[str], lat: float, lng: float) -> list[Callable[[], Sent]]:
        return [partial(live.line.send, u, "location", lat=lat, lng=lng) for u in users]

    for r in range(rounds):
        order = in_turn(lives, r)
        users = {live.run.size: [line_id(f"register-{live.run.db}-{live.run.size}", r * probes + k)
                                 for k in range(probes)] for live in order}
        ids = {live.run.size: [p.line_user_id for p in live.run.seeded.probes] for live in order}
        for live in order:  # a business and an accepted dispatch of today per probe, for this round
            use_database(live.url)
            arm_probes(program, live.run.seeded.probes, r)
        steps: list[tuple[str, str | None, Callable[[Live], list[Callable[[], Sent]]]]] = [
            ("follow", None, lambda v: texts(v, users[v.run.size], "follow", None)),
            ("terms", None, lambda v: texts(v, users[v.run.size], "text", "同意する")),
            ("code", None, lambda v: texts(v, users[v.run.size], "text", v.run.seeded.institution_code)),
            ("registration", "registration_answer", lambda v: texts(v, users[v.run.size], "text", "山田 太郎")),
            ("checkin-word", None, lambda v: texts(v, ids[v.run.size], "text", "チェックイン")),
            ("checkin", "checkin_location", lambda v: at(v, ids[v.run.size], lat_in, lng_in)),
            ("checkout-word", None, lambda v: texts(v, ids[v.run.size], "text", "チェックアウト")),
            ("checkout", "checkout_location", lambda v: at(v, ids[v.run.size], lat_out, lng_out)),
            ("report", "report_answer", lambda v: texts(v, ids[v.run.size], "text", REPORT_TEXT["consultation"])),
            ("pause", None, lambda v: texts(v, ids[v.run.size], "text", "キャンセル")),
        ]
        for name, kind, sends in steps:
            for live, done in zip(order, phase_across(name, [(live.stack, sends(live)) for live in order])):
                if kind is not None:
                    parts.setdefault((live.run.size, kind), []).append(done)
                elif name == "code":
                    summarise(done, "スケール支援機関001", live.run.errors)
    expect = {"registration_answer": "フリガナ", "checkin_location": "チェックインしました",
              "checkout_location": "チェックアウトしました", "report_answer": "支援内容"}
    for live in lives:
        for kind, wanted in expect.items():
            live.run.events[kind] = summarise(merge(kind, parts[(live.run.size, kind)]), wanted, live.run.errors)


def command_result(name: str, sent: list[Sent], errors: list[str]) -> dict[str, Any]:
    problems = sorted({p for s in sent for p in s.problems})
    bad = [s.status for s in sent if s.status != 200]
    if bad:
        problems.append(f"HTTP {bad[0]}")
    errored = [t for s in sent for t in s.texts if "エラーが発生" in t]
    if errored:
        problems.append(f"error reply: {errored[0][:80]}")
    last = sent[-1] if sent else None
    chars = max((len(t) for s in sent for t in s.texts), default=0)
    if errored or bad:
        errors.append(f"{name}: {problems[-1]}")
    return {"ms": round(statistics.median(s.ms for s in sent), 1) if sent else 0.0,
            "fits": not problems, "problems": problems[:4],
            "messages": max((len(s.messages) for s in sent), default=0), "max_chars": chars,
            "reply": (" / ".join(last.texts) if last else "")[:120]}


def measure_commands(lives: list[Live], repeats: int) -> None:
    """Every reviewer and secretariat command, ``repeats`` times at every size, the sizes in turn."""
    def plain(s: Seeded) -> list[tuple[str, str, str]]:
        reviewer, sec = s.reviewer, s.secretariat
        return [("審査待ち", reviewer, "審査待ち"), ("依頼一覧", reviewer, "依頼一覧"), ("/pending", sec, "/pending"),
                ("/find name", sec, "/find 山田"), ("/find kana", sec, "/find ヤマダ"), ("/dispatches", sec, "/dispatches"),
                ("/reports", sec, "/reports"), ("/fees", sec, f"/fees {s.export_month}"), ("/stats", sec, "/stats"),
                ("/staff", sec, "/staff")]

    commands = {live.run.size: plain(live.run.seeded) for live in lives}
    for k in range(len(commands[lives[0].run.size])):
        sent: dict[int, list[Sent]] = {live.run.size: [] for live in lives}
        for live in lives:  # once unmeasured: the first of a kind warms the worker's caches
            _, user, text = commands[live.run.size][k]
            live.line.send(user, "text", text=text)
        for r in range(repeats):
            for live in in_turn(lives, r):
                _, user, text = commands[live.run.size][k]
                sent[live.run.size].append(live.line.send(user, "text", text=text))
        for live in lives:
            name = commands[live.run.size][k][0]
            live.run.commands[name] = command_result(name, sent[live.run.size], live.run.errors)
    # 支援依頼: up to the theme, then the theme answer is what lists the experts who match (area + field).
    matched: dict[int, list[Sent]] = {}
    for live in lives:
        reviewer = live.run.seeded.reviewer
        for text in ("支援依頼", "株式会社計測依頼", "なし"):
            live.line.send(reviewer, "text", text=text)
        live.line.send(reviewer, "location", lat=PIN[0], lng=PIN[1], address="東京都千代田区丸の内1-9-1")
        live.line.send(reviewer, "text", text="1")  # unmeasured, as above
        matched[live.run.size] = []
    for r in range(repeats):
        for live in in_turn(lives, r):
            reviewer = live.run.seeded.reviewer
            live.line.send(reviewer, "text", text="戻る")
            matched[live.run.size].append(live.line.send(reviewer, "text", text="1"))
    for live in lives:
        live.line.send(live.run.seeded.reviewer, "text", text="キャンセル")
        live.run.commands["支援依頼 matching"] = command_result("支援依頼 matching", matched[live.run.size],
                                                              live.run.errors)


def measure_jobs(run: SizeRun, stack: ScaleStack, tmp: Path, idle_s: float, drain_s: float) -> list[str]:
    """The CLI jobs, one after another, under a steady registration load; returns the load's users."""
    s = run.seeded
    out = stack.dir / "exports"
    out.mkdir(exist_ok=True)
    log = stack.dir / "cli.log"
    load = SteadyLoad(stack, s.institution_code, f"{run.db}-{run.size}").start()
    t0 = time.monotonic()
    time.sleep(idle_s)
    idle_end = time.monotonic()
    windows: dict[str, tuple[float, float]] = {}  # job → when it ran: which one the load's slow events met
    try:
        for key, args in (("export_empty_month", ["export", "fees", "--month", "2000-01", "--out", str(out / "e.csv")]),
                          ("export_fees", ["export", "fees", "--month", s.export_month, "--out", str(out / "f.csv")]),
                          ("export_zengin", ["export", "zengin", "--month", s.export_month,
                                             "--out", str(out / "z.txt")]),
                          ("purge", ["purge"])):
            begun = time.monotonic()
            done = run_cli(args, stack.env(), log)
            windows[key] = (begun, time.monotonic())
            run.jobs[key] = {"ms": round(done.ms, 1), "peak_rss_mb": round(done.peak_rss_mb, 1),
                             "exit": done.exit_code}
            if done.exit_code != 0:
                run.errors.append(f"bot.py {' '.join(args)}: exit {done.exit_code}: {done.output[-200:]}")
        with stack.state.lock:
            mark = len(stack.state.deliveries)
        last_id = outbox_last_id()
        begun = time.monotonic()
        done = run_cli(["conditions", "announce"], stack.env(announce_program(tmp)), log)
        if done.exit_code != 0:
            run.errors.append(f"conditions announce: exit {done.exit_code}: {done.output[-200:]}")
        told = re.search(r"を (\d+) 名に送信", done.output)
        drain_start = time.monotonic()
        while time.monotonic() - drain_start < drain_s and outbox_pending(last_id):
            time.sleep(0.5)
        pending = outbox_pending(last_id)
        drained_s = time.monotonic() - drain_start
        windows["announce"] = (begun, time.monotonic())
        with stack.state.lock:
            pushed = [d for d in stack.state.deliveries[mark:] if d["via"] in ("push", "multicast")]
        calls = len({d.get("requestId") or id(d) for d in pushed})
        run.jobs["announce"] = {"ms": round(done.ms, 1), "peak_rss_mb": round(done.peak_rss_mb, 1),
                                "exit": done.exit_code,
                                "experts": int(told.group(1)) if told else None, "line_api_calls": calls,
                                "delivered": len(pushed), "drain_s": round(drained_s, 1),
                                "still_pending": pending, "outbox_pending_by_reason": pending_reasons()}
        # As many load events during the jobs as idle (PostgreSQL's took 8 s: the p99 of 66 events,
        # their slowest, against that of 158): the exports run again, as ops may.
        again, idle_n = 0, len(load.window(t0, idle_end))
        while len(load.window(idle_end, time.monotonic())) < idle_n and again < 40:
            run_cli(["export", "fees" if again % 2 == 0 else "zengin", "--month", s.export_month,
                     "--out", str(out / "again.out")], stack.env(), log)
            again += 1
        run.jobs["exports_again"] = {"runs": again}
    finally:
        jobs_end = time.monotonic()
        load.stop()
    idle = load.window(t0, idle_end)
    during = load.window(idle_end, jobs_end)
    run.jobs["steady_load"] = {
        "idle_events": len(idle), "idle_p99_ms": round(percentile([r[2] for r in idle], 99), 1),
        "during_events": len(during), "during_p99_ms": round(percentile([r[2] for r in during], 99), 1),
        "during_503": sum(1 for r in during if r[1] == 503),
        "during_non_200": sum(1 for r in during if r[1] != 200),
        "p99_ms_by_job": {key: round(percentile([r[2] for r in load.window(a, b)], 99), 1)
                          for key, (a, b) in windows.items() if load.window(a, b)},
    }
    return load.users


def start_size(db: str, size: int, pg: PostgresCluster | None, tmp: Path, stacks: list[ScaleStack]) -> Live:
    """A fresh database of ``size`` experts, seeded, and its stack up and warm (appended to
    ``stacks`` as soon as it runs, so whatever fails next still stops it)."""
    from cryptography.fernet import Fernet

    from program import load_program
    from storage import sealed
    from storage.crypto import FieldCrypto
    from storage.migrations import apply_migrations

    started = time.monotonic()
    where = tmp / f"{db}-{size}"
    where.mkdir(parents=True, exist_ok=True)
    if pg is not None:
        name = f"scale{size}"
        pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", name)
        url = f"postgresql://postgres@127.0.0.1:{pg.port}/{name}"
    else:
        url = f"sqlite:///{where / 'bot.db'}"
    keys, signing = Fernet.generate_key().decode(), secrets.token_urlsafe(32)
    use_database(url)
    sealed.configure(FieldCrypto((keys,), signing))
    apply_migrations()
    seeded = seed(load_program(ROOT / "program.toml"), size, probes=min(10, size))
    print(f"  [{db} {size}] seeded in {seeded.seconds:.1f}s: {seeded.counts['Expert']} experts, "
          f"{seeded.counts['Dispatch']} dispatches, {seeded.counts['Report']} reports, "
          f"{seeded.counts['AuditLog']} audit rows ({seeded.audit_per_expert:.1f}/expert)", flush=True)
    stack = ScaleStack(f"{db}-{size}", where, url, keys, signing, ROOT / "program.toml")
    stacks.append(stack)
    stack.start()
    live = Live(SizeRun(db, size, seeded), stack, Line(stack), url)
    for user, text in ((seeded.secretariat, "/help"), (seeded.reviewer, "ヘルプ")):  # warm both workers
        for _ in range(2):
            live.line.send(user, "text", text=text)
    live.rq_start_mb = stack.worker_rss_mb()
    live.run.seconds = time.monotonic() - started
    return live


def run_database(db: str, sizes: list[int], pg: PostgresCluster | None, tmp: Path,
                 args: argparse.Namespace) -> list[SizeRun]:
    """Every size of one database: all seeded and up at once, the events and commands measured
    in rounds over the sizes, then each size's jobs under its steady load, and its memory."""
    from program import load_program

    stacks: list[ScaleStack] = []
    lives: list[Live] = []
    try:
        for size in sizes:
            print(f"[{db} {size}]", flush=True)
            lives.append(start_size(db, size, pg, tmp, stacks))
        started = time.monotonic()
        measure_events(lives, load_program(ROOT / "program.toml"), args.samples)
        for live in lives:
            print(f"  [{db} {live.run.size}] events: " + ", ".join(
                f"{k} {v['cpu_ms']}ms cpu/p99 {v['p99_ms']}ms" for k, v in live.run.events.items()), flush=True)
        measure_commands(lives, args.repeats)
        for live in lives:
            print(f"  [{db} {live.run.size}] commands: " + ", ".join(
                f"{k} {v['ms']:.0f}ms{'' if v['fits'] else ' (no fit)'}" for k, v in live.run.commands.items()),
                flush=True)
        shared = (time.monotonic() - started) / len(lives)
        for live in lives:
            run, stack, t0 = live.run, live.stack, time.monotonic()
            use_database(live.url)
            users = measure_jobs(run, stack, tmp, args.idle_s, args.drain_s)
            print(f"  [{db} {run.size}] jobs: " + ", ".join(f"{k} {v.get('ms', '')}" for k, v in run.jobs.items()),
                  flush=True)
            assert stack.redis is not None and stack.gunicorn is not None
            sess, _, marker = session_bytes(stack.redis.url, users + [p.line_user_id for p in run.seeded.probes])
            run.memory = {"redis_bytes_per_session": round(sess), "redis_bytes_per_marker": round(marker),
                          "gunicorn_worker_rss_mb": round(max_worker_rss_mb(stack.gunicorn.pid), 1),
                          "rq_worker_rss_start_mb": round(live.rq_start_mb, 1),
                          "rq_worker_rss_end_mb": round(stack.worker_rss_mb(), 1)}
            run.seconds += shared + time.monotonic() - t0
            print(f"  [{db} {run.size}] done ({run.seconds:.0f}s, the rounds shared with the other sizes)", flush=True)
    finally:
        for live in lives:
            live.line.close()
        for stack in stacks:
            stack.stop()
        from storage import db as storage_db

        storage_db.database.close()
    return [live.run for live in lives]


# --- the verdicts --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None, help="commissioned experts per size, comma-separated "
                                                       "(default 10,1000,10000; --quick 10,200)")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 10,200, fewer samples")
    parser.add_argument("--db", default="sqlite,postgresql", help="databases, comma-separated")
    parser.add_argument("--samples", type=int, default=None, help="events of each kind per size (default 300)")
    parser.add_argument("--repeats", type=int, default=None, help="times each command is timed (default 5)")
    parser.add_argument("--idle-s", type=float, default=None, help="steady load alone before the jobs (default 20)")
    parser.add_argument("--drain-s", type=float, default=None,
                        help="longest wait for the announce's pushes to go out (default 180)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument("--keep-tmp", action="store_true", help="keep databases, logs and exports")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in (args.sizes or ("10,200" if args.quick else "10,1000,10000")).split(",") if x.strip()]
    dbs = [x.strip() for x in args.db.split(",") if x.strip()]
    args.samples = args.samples or (10 if args.quick else 300)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.idle_s = args.idle_s if args.idle_s is not None else (4.0 if args.quick else 20.0)
    args.drain_s = args.drain_s if args.drain_s is not None else (60.0 if args.quick else 180.0)
    if any(d not in ("sqlite", "postgresql") for d in dbs) or not sizes:
        parser.error("--db takes sqlite and/or postgresql; --sizes at least one number")

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    undo = install_sigterm_as_interrupt()
    started = time.monotonic()
    code = code_version()
    print(f"bench.scale: sizes {sizes} on {dbs}; {args.samples} events of each kind, commands × {args.repeats}; "
          f"tmp={tmp}\ncode: {code}", flush=True)
    runs: dict[str, list[SizeRun]] = {}
    broken: list[str] = []
    pg: PostgresCluster | None = None
    try:
        for db in dbs:
            if db == "postgresql":
                try:
                    pg = PostgresCluster()
                except ServerUnavailable as exc:
                    broken.append(f"postgresql: {exc}")
                    continue
                pg.init()
            runs[db] = run_database(db, sizes, pg if db == "postgresql" else None, tmp, args)
            if pg is not None:
                pg.remove()
                pg = None
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        if pg is not None:
            pg.remove()
        undo()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    items: dict[str, dict[str, Any]] = {}
    for db, db_runs in runs.items():
        items.update(items_for(db, db_runs))
    errors = [f"{r.db} {r.size}: {e}" for db_runs in runs.values() for r in db_runs for e in r.errors] + broken
    print("\n== results ==")
    print(table(sizes, items))
    failed = [name for name, item in items.items() if not item["ok"]]
    if errors:
        print("\nERRORS (the figures next to them are not trustworthy):")
        for e in errors[:30]:
            print(f"  {e}")
    print(f"\ntargets not met: {len(failed)} of {len(items)}" + (f": {', '.join(failed)}" if failed else ""))
    print(f"run took {time.monotonic() - started:.0f}s")
    summary = {
        "sizes": sizes,
        "db": {db: {str(r.size): {"seed_s": round(r.seeded.seconds, 1), "run_s": round(r.seconds, 1),
                                  "rows": r.seeded.counts, "audit_per_expert": round(r.seeded.audit_per_expert, 1),
                                  "export_month": r.seeded.export_month, "events": r.events,
                                  "commands": r.commands, "jobs": r.jobs, "memory": r.memory}
                    for r in db_runs} for db, db_runs in runs.items()},
        "items": items,
        "memory": {db: {str(r.size): r.memory for r in db_runs} for db, db_runs in runs.items()},
        "errors": errors,
        "targets_met": not failed,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": code.split(" ")[0],
        "code_detail": code,
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 1 if args.strict and (failed or errors) else 0


if __name__ == "__main__":
    sys.exit(main())
