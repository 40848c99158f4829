"""Webhook throughput and latency: the bot against the official echo sample, in one run.

    python -m bench.webhook              # 200 users × 5 events, at 4 then 16 connections
    python -m bench.webhook --quick      # smoke run (20 users)
    python -m bench.webhook --users 500

Both targets run under the same gunicorn settings (2 sync workers on a free
loopback port) against the same fake LINE platform (its own process,
contract checks off) and get the same load: N users, each walking the
registration start (follow → 同意する → institution code → 氏名 → フリガナ) in
order, one event after the previous response, from a thread pool of 4 and
then 16 connections. Reply tokens are issued by the platform before each
phase (TTL one hour, so none expires during the run).

Every response must be a 200 and every event must have produced exactly one
reply at the platform with the expected content (the bot's, step by step);
anything else is reported as an error — a fast bot that does not answer
measures nothing. Targets (bot/baseline events/s ≥ 0.70 at both
concurrencies, bot p99 ≤ 2 × baseline p99) are printed as met / not met;
the exit status never depends on them. The last line of output is one JSON
object with the figures.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/webhook.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Child,
    LoadResult,
    PlatformClient,
    Request,
    cpu_seconds,
    env_without,
    free_port,
    gunicorn_args,
    install_sigterm_as_interrupt,
    machine_cpu_seconds,
    max_worker_rss_mb,
    rnd,
    run_load,
    wait_http,
    worker_pids,
)
from bench.profiling import cpu_ratio_summary, print_profiles  # noqa: E402
from simulator.state import message_text  # noqa: E402

TARGET_RATIO = 0.70
TARGET_P99_FACTOR = 2.0
TARGET_CPU_RATIO = 1.3  # bot worker CPU per event / the echo sample's, median over rounds
INSTITUTION = "ベンチ商工会"
NAME, KANA = "山田 太郎", "やまだ たろう"
TOKEN_TTL_S = 3600
TARGETS = {
    "baseline": "bench.echo_baseline:create_app()",
    "bot": "bot:wsgi_app()",
}


@dataclass
class Phase:
    target: str
    label: str
    users: list[str]
    load: LoadResult
    check: dict[str, Any]
    rss_mb: float
    cpu_ms: dict[str, float]  # CPU per event by process group, during the load only
    busy_cores: float  # whole machine, during the load


def user_id(label: str, i: int) -> str:
    return "U" + hashlib.sha256(f"bench:{label}:{i}".encode()).hexdigest()[:32]


def conversation(code: str) -> list[tuple[str, str | None]]:
    """The five events every user sends: (kind, text)."""
    return [("follow", None), ("text", "同意する"), ("text", code), ("text", NAME), ("text", KANA)]


def expected(target: str, code: str) -> list[str]:
    """A substring each step's reply must contain."""
    if target == "baseline":
        return ["Got follow event", "同意する", code, NAME, KANA]
    return ["友だち追加ありがとうございます", "機関コード", INSTITUTION, "フリガナ", "ヤマダ"]


def build_scripts(users: list[str], tokens: list[str], code: str, secret: str) -> list[list[Request]]:
    from simulator import events

    scripts, it = [], iter(tokens)
    for uid in users:
        script = []
        for kind, text in conversation(code):
            token = next(it)
            event = events.follow(uid, token) if kind == "follow" else events.text(uid, str(text), token)
            body = events.body([event])
            script.append(Request(
                body=body.encode("utf-8"),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "x-line-signature": events.sign(body, secret),
                    "User-Agent": "LineBotWebhook/2.0",
                },
            ))
        scripts.append(script)
    return scripts


def verify(target: str, code: str, users: list[str], load: LoadResult,
           deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """Did every event get its reply, with the content that step should have?"""
    want = expected(target, code)
    by_user: dict[str, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_user.setdefault(d["to"], []).append(d)
    missing = extra = wrong = flow_errors = pushes = 0
    sample: list[str] = []
    for i in load.done:
        got = sorted(by_user.get(users[i], []), key=lambda d: d["seq"])
        replies = [d for d in got if d["via"] == "reply"]
        pushes += len(got) - len(replies)
        missing += max(0, len(want) - len(replies))
        extra += max(0, len(replies) - len(want))
        for step, d in enumerate(replies[: len(want)]):
            texts = [message_text(m) for m in d["messages"]]
            if any("エラーが発生" in t for t in texts):
                flow_errors += 1
            if not any(want[step] in t for t in texts):
                wrong += 1
                if len(sample) < 3:
                    sample.append(f"step {step + 1} wanted {want[step]!r}, got {texts!r}"[:300])
    non200 = sum(n for c, n in load.statuses.items() if c != "200")
    errors = non200 + missing + extra + wrong + flow_errors
    return {"non_200": non200, "missing_replies": missing, "extra_replies": extra, "pushes": pushes,
            "wrong_replies": wrong, "flow_errors": flow_errors, "errors": errors,
            "skipped_users": load.users_skipped, "samples": sample + load.errors[:3]}


def run_phase(target: str, label: str, n_users: int, concurrency: int, *, url: str, master_pid: int,
              platform: PlatformClient, code: str, secret: str, deadline_s: float,
              other_pids: dict[str, int]) -> Phase:
    users = [user_id(label, i) for i in range(n_users)]
    platform.reset()  # same empty platform for every phase; tokens are issued after the reset
    steps = len(conversation(code))
    tokens = platform.reply_tokens([u for u in users for _ in range(steps)])
    scripts = build_scripts(users, tokens, code, secret)
    # The platform is a gunicorn master too: count its worker with it.
    groups = {"workers": worker_pids(master_pid),
              **{k: [v] + (worker_pids(v) if k == "platform" else []) for k, v in other_pids.items()}}
    before = {k: cpu_seconds(v) for k, v in groups.items()}
    client_before = time.process_time()
    machine_before, steal_before = machine_cpu_seconds()
    load = run_load(url + "/callback", scripts, concurrency, deadline_s=deadline_s)
    n = max(1, load.events)
    machine_after, steal_after = machine_cpu_seconds()
    cpu = {k: (cpu_seconds(v) - before[k]) * 1000 / n for k, v in groups.items()}
    cpu["client"] = (time.process_time() - client_before) * 1000 / n
    # Anything else on the machine (other users' jobs, the kernel): a noisy neighbour shows up here.
    cpu["other"] = max(0.0, (machine_after - machine_before) * 1000 / n - sum(cpu.values()))
    cpu["steal"] = (steal_after - steal_before) * 1000 / n
    busy = (machine_after - machine_before) / load.wall_s if load.wall_s else 0.0
    check = verify(target, code, users, load, platform.deliveries())
    return Phase(target, label, users, load, check, max_worker_rss_mb(master_pid), cpu, busy)


def merge(parts: list[Phase]) -> Phase:
    """One phase from several rounds: events/s = all events / all wall time."""
    first = parts[0]
    load = LoadResult(concurrency=first.load.concurrency, wall_s=sum(p.load.wall_s for p in parts))
    check: dict[str, Any] = {}
    for p in parts:
        load.latencies_ms.extend(p.load.latencies_ms)
        load.errors.extend(p.load.errors)
        load.users_skipped += p.load.users_skipped
        for code, n in p.load.statuses.items():
            load.statuses[code] = load.statuses.get(code, 0) + n
        for key, value in p.check.items():
            check[key] = check.get(key, [] if isinstance(value, list) else 0) + value
    events = max(1, load.events)
    cpu = {k: sum(p.cpu_ms[k] * p.load.events for p in parts) / events for k in first.cpu_ms}
    busy = sum(p.busy_cores * p.load.wall_s for p in parts) / load.wall_s if load.wall_s else 0.0
    return Phase(first.target, first.label.split("-r")[0], [u for p in parts for u in p.users], load, check,
                 max(p.rss_mb for p in parts), cpu, busy)


def code_version() -> str:
    """The commit measured, and whether the tree differs from it (outside bench/)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.split("\n")
        changed = [line[3:] for line in dirty if line.strip()]
        return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bot.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"bot.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def session_bytes(redis_url: str, users: list[str], sample: int = 50) -> tuple[float, int, float]:
    """Average ``MEMORY USAGE sess:<id>`` over up to ``sample`` users; also evt-marker bytes."""
    from storage.redis_conn import client_for

    r = client_for(redis_url)
    try:
        sizes = [r.memory_usage(f"sess:{u}") for u in users[:sample]]
        sizes = [s for s in sizes if s]
        markers = [r.memory_usage(k) for k in itertools.islice(r.scan_iter("evt:*", count=1000), sample)]
        markers = [m for m in markers if m]
        avg = sum(sizes) / len(sizes) if sizes else 0.0
        return avg, len(sizes), (sum(markers) / len(markers) if markers else 0.0)
    finally:
        r.close()


def describe(p: Phase) -> str:
    lr, c = p.load, p.check
    return (f"{p.target:9} c={lr.concurrency:<3} events={lr.events:<5} wall={lr.wall_s:6.2f}s "
            f"ev/s={lr.eps:7.1f}  p50={lr.pct(50):6.1f}ms  p99={lr.pct(99):6.1f}ms  max={max(lr.latencies_ms or [0]):6.1f}ms  "
            f"rss={p.rss_mb:5.1f}MB  errors={c['errors']}\n"
            f"{'':10}CPU ms/event: " + "  ".join(f"{k} {v:.2f}" for k, v in p.cpu_ms.items())
            + f"; machine busy {p.busy_cores:.2f} of {_cpus()} cores")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=None, help="users per phase (default 200; --quick 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 users, short warm-up")
    parser.add_argument("--concurrency", default="4,16", help="connections per phase, comma-separated")
    parser.add_argument("--warmup-users", type=int, default=None, help="users per target before measuring (default 20)")
    parser.add_argument("--phase-timeout", type=float, default=60.0,
                        help="seconds after which a phase starts no new user (default 60)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="split each phase into this many alternating baseline/bot rounds (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers for both targets (default 2)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, db, redis)")
    parser.add_argument("--profile", action="store_true",
                        help="profile both targets' workers with cProfile and print the top functions by own time "
                             "(profiling slows the workers: the figures of such a run are not the benchmark's)")
    parser.add_argument("--profile-top", type=int, default=20, help="rows of the profile tables (default 20)")
    args = parser.parse_args(argv)
    n_users = args.users or (20 if args.quick else 200)
    n_warm = args.warmup_users if args.warmup_users is not None else (5 if args.quick else 20)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]

    secret, token = secrets.token_hex(16), secrets.token_urlsafe(32)
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    children: list[Child] = []
    redis_server = None
    platform: PlatformClient | None = None
    undo_sigterm = install_sigterm_as_interrupt()
    started = time.monotonic()
    try:
        from cryptography.fernet import Fernet

        from storage.redis_conn import EmbeddedRedis

        redis_server = EmbeddedRedis(tmp)
        redis_url = redis_server.start()

        plat_port = free_port()
        plat_url = f"http://127.0.0.1:{plat_port}"
        bot_port, base_port = free_port(), free_port()
        # The platform runs under gunicorn gthread (one process, so one state):
        # unlike Werkzeug's development server it keeps HTTP/1.1 connections
        # alive, as api.line.me does. Both targets talk to the same server.
        plat_env = env_without([])
        plat_env.update(LINE_CHANNEL_ACCESS_TOKEN=token, LINE_CHANNEL_SECRET=secret, SIM_CONTRACT="0",
                        SIM_REPLY_TOKEN_TTL=str(TOKEN_TTL_S),
                        SIM_WEBHOOK_URL=f"http://127.0.0.1:{bot_port}/callback")
        plat = Child("platform", [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "32",
                                  "--keep-alive", "30", "-b", f"127.0.0.1:{plat_port}",
                                  "simulator.platform:wsgi_app()"],
                     env=plat_env, log_path=tmp / "platform.log")
        children.append(plat)
        wait_http(plat_url + "/_sim/info", plat)
        platform = PlatformClient(plat_url)

        common_env = env_without(["REDIS_URL", "DATABASE_URL", "DATA_DIR", "PORT"])
        common_env.update(LINE_CHANNEL_SECRET=secret, LINE_CHANNEL_ACCESS_TOKEN=token,
                          LINE_API_BASE_URL=plat_url, LINE_DATA_API_BASE_URL=plat_url)
        bot_env = dict(common_env)
        bot_env.update(
            DATA_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            SIGNING_KEY=secrets.token_urlsafe(32),
            REDIS_URL=redis_url,
            DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
            DATA_DIR=str(tmp),
            PROGRAM_CONFIG=str(ROOT / "program.toml"),
            PORT=str(bot_port),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{bot_port}",
        )
        run_cli(["init-db"], bot_env)
        out = run_cli(["institution", "add", INSTITUTION, "よろず"], bot_env)
        found = re.search(r"機関コード:\s*([A-Z0-9]+)", out)
        if not found:
            raise RuntimeError(f"no institution code in: {out!r}")
        code = found.group(1)

        servers: dict[str, tuple[Child, str]] = {}
        for name, port, env in (("baseline", base_port, common_env), ("bot", bot_port, bot_env)):
            command = gunicorn_args(TARGETS[name], port, args.workers)
            if args.profile:
                (tmp / "profile").mkdir(exist_ok=True)
                env = dict(env, BENCH_PROFILE_DIR=str(tmp / "profile"), BENCH_PROFILE_LABEL=name)
                command[3:3] = ["-c", str(ROOT / "bench" / "gunicorn_profile.py")]
            child = Child(f"gunicorn {name}", command, env=env, log_path=tmp / f"gunicorn-{name}.log")
            children.append(child)
            servers[name] = (child, f"http://127.0.0.1:{port}")
        for name, (child, url) in servers.items():
            wait_http(url + "/healthz", child)
        assert redis_server.process is not None
        other_pids = {"platform": plat.pid, "redis": redis_server.process.pid}

        print(f"bench.webhook: {n_users} users × 5 events per phase, concurrency {levels}, "
              f"gunicorn -w {args.workers} -k sync, 2 targets; cpus={_cpus()}; tmp={tmp}\n"
              f"code: {code_version()}", flush=True)

        def phase(name: str, label: str, n: int, conc: int) -> Phase:
            child, url = servers[name]
            return run_phase(name, label, n, conc, url=url, master_pid=child.pid, platform=platform,
                             code=code, secret=secret, deadline_s=args.phase_timeout, other_pids=other_pids)

        for name in servers:  # warm both workers of each target (imports, connections, caches)
            if n_warm:
                w = phase(name, f"warm-{name}", n_warm, 4)
                print(f"warm-up   {describe(w)}", flush=True)

        # Interleaved in rounds (baseline, bot; then bot, baseline; …) so that a neighbour's
        # burst of CPU lands on both targets rather than on one of them.
        rounds = max(1, min(args.rounds, n_users))
        sizes = [n_users // rounds + (1 if r < n_users % rounds else 0) for r in range(rounds)]
        results: dict[tuple[str, int], Phase] = {}
        round_cpu_ratios: list[float] = []  # bot / baseline worker CPU per event, one per round and concurrency
        for conc in levels:
            parts: dict[str, list[Phase]] = {name: [] for name in servers}
            for r, size in enumerate(sizes):
                for name in (list(servers) if r % 2 == 0 else list(servers)[::-1]):
                    parts[name].append(p := phase(name, f"c{conc}-r{r}", size, conc))
                    print(f"round {r + 1}/{rounds} {describe(p)}", flush=True)
            for bot_part, base_part in zip(parts["bot"], parts["baseline"]):
                if base_part.cpu_ms["workers"] > 0:
                    round_cpu_ratios.append(bot_part.cpu_ms["workers"] / base_part.cpu_ms["workers"])
            for name, ps in parts.items():
                results[(name, conc)] = p = merge(ps)
                print(f"measured  {describe(p)}", flush=True)

        bot_users = results[("bot", levels[-1])].users
        sess_bytes, sess_n, evt_bytes = session_bytes(redis_url, bot_users)
        bot_rss = max(max_worker_rss_mb(servers["bot"][0].pid), *(p.rss_mb for (n, _), p in results.items() if n == "bot"))
        base_rss = max(max_worker_rss_mb(servers["baseline"][0].pid),
                       *(p.rss_mb for (n, _), p in results.items() if n == "baseline"))

        summary: dict[str, Any] = {}
        print("\n== results ==")
        all_met = True
        for conc in levels:
            b, o = results[("baseline", conc)], results[("bot", conc)]
            ratio = o.load.eps / b.load.eps if b.load.eps else 0.0
            p99_ratio = o.load.pct(99) / b.load.pct(99) if b.load.pct(99) else 0.0
            ratio_met, p99_met = ratio >= TARGET_RATIO, p99_ratio <= TARGET_P99_FACTOR
            all_met &= ratio_met and p99_met
            print(f"c{conc}: events/s bot {o.load.eps:.1f} / baseline {b.load.eps:.1f} = {ratio:.2f} "
                  f"(target ≥ {TARGET_RATIO:.2f}: {'met' if ratio_met else 'NOT met'})")
            print(f"c{conc}: p99 bot {o.load.pct(99):.1f} ms / baseline {b.load.pct(99):.1f} ms = {p99_ratio:.2f} "
                  f"(target ≤ {TARGET_P99_FACTOR:.1f}: {'met' if p99_met else 'NOT met'}); "
                  f"p50 bot {o.load.pct(50):.1f} ms, baseline {b.load.pct(50):.1f} ms")
            summary[f"c{conc}"] = {
                "ratio": rnd(ratio, 3), "bot_eps": rnd(o.load.eps, 1), "base_eps": rnd(b.load.eps, 1),
                "bot_p50_ms": rnd(o.load.pct(50)), "bot_p99_ms": rnd(o.load.pct(99)),
                "base_p50_ms": rnd(b.load.pct(50)), "base_p99_ms": rnd(b.load.pct(99)),
                "p99_ratio": rnd(p99_ratio, 3), "ratio_met": ratio_met, "p99_met": p99_met,
                "bot_worker_cpu_ms_per_event": rnd(o.cpu_ms["workers"]),
                "base_worker_cpu_ms_per_event": rnd(b.cpu_ms["workers"]),
            }
        cpu_ratio = cpu_ratio_summary(round_cpu_ratios)
        cpu_met = cpu_ratio["median"] <= TARGET_CPU_RATIO
        all_met &= cpu_met
        print(f"worker CPU per event bot / baseline: median {cpu_ratio['median']:.2f} over {cpu_ratio['rounds']} "
              f"rounds (min {cpu_ratio['min']:.2f}, max {cpu_ratio['max']:.2f}; target ≤ {TARGET_CPU_RATIO:.1f}: "
              f"{'met' if cpu_met else 'NOT met'})")
        print(f"Redis bytes per session: {sess_bytes:.0f} (MEMORY USAGE sess:<id>, mean of {sess_n}); "
              f"plus {evt_bytes:.0f} bytes per evt:<id> dedupe marker (one per event, 3-day TTL)")
        print(f"worker RSS (max over gunicorn workers): bot {bot_rss:.1f} MB, baseline {base_rss:.1f} MB")
        errors = {f"{n}_c{c}": p.check for (n, c), p in results.items() if p.check["errors"] or p.check["skipped_users"]}
        if errors:
            print("ERRORS — figures are not trustworthy:")
            for key, check in errors.items():
                print(f"  {key}: {json.dumps(check, ensure_ascii=False)}")
        else:
            print(f"checks: every response 200, every event answered with its expected reply "
                  f"({sum(p.load.events for p in results.values())} events)")
        noisy = {}
        for (n, c), p in results.items():
            share = (p.cpu_ms["other"] + p.cpu_ms["steal"]) / max(1e-9, sum(p.cpu_ms.values()))
            if share > 0.15:
                noisy[f"{n}_c{c}"] = round(share, 2)
        if noisy:
            print(f"WARNING: other processes or the hypervisor (steal) took a large share of the CPU during "
                  f"{noisy}; ratios are less reliable — rerun on a quiet machine")
        print(f"targets {'all met' if all_met else 'NOT all met'}; run took {time.monotonic() - started:.0f}s")
        summary.update({
            "redis_bytes_per_session": round(sess_bytes),
            "redis_bytes_per_event_marker": round(evt_bytes),
            "cpu_ratio": cpu_ratio,
            "cpu_ratio_met": cpu_met,
            "worker_rss_mb": rnd(bot_rss, 1),
            "base_worker_rss_mb": rnd(base_rss, 1),
            "users": n_users,
            "code": code_version(),
            "errors": sum(p.check["errors"] for p in results.values()),
            "interference": noisy,
            "targets_met": all_met,
        })
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for child in reversed(children):
            child.stop()
        if args.profile and (tmp / "profile").is_dir():
            print_profiles(tmp / "profile", args.profile_top)
        if platform is not None:
            platform.close()
        if redis_server is not None:
            redis_server.stop()
        undo_sigterm()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    sys.exit(main())
