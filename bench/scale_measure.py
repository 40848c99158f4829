"""Measuring for ``bench.scale``: one bot stack per database and size, and what is timed on it.

A ``ScaleStack`` is the bot as production runs it, against one seeded
database: ``gunicorn -w 2 -k sync 'bot:wsgi_app()'``, the RQ worker
(``bot.py worker``), a redis-server of its own (``bench.servers``) and the
fake LINE platform in a thread of this process, each reply tied to its reply
token (``ChaosPlatformState``) and checked against LINE's OpenAPI spec
(``simulator.contract``) by ``Line.send`` once it has arrived — outside the
bot's round trip, so the checker's time is not timed as the bot's.

What is timed on it:

* ``Line.send``: one signed webhook event → the 200, and the reply it
  produced (found by its reply token), checked against LINE's limits
  (:func:`fits`);
* ``phase_across``: one kind of event for many users at every size, event
  by event in turn, with each stack's gunicorn workers' CPU time over the
  phase (``/proc``, so per event = phase / events);
* ``run_cli``: ``bot.py <command>`` as ops run it: wall time and the
  child's own peak RSS (``VmHWM``, read while it runs);
* ``SteadyLoad``: registration answers at a fixed pace from a thread, to see
  what long jobs do to everyone else (503s, p99).

And the announce's program file and its outbox rows (sent, still pending, why).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.chaos_rig import ChaosPlatformState, wait_healthy
from bench.common import (
    ROOT,
    Child,
    cpu_seconds,
    env_without,
    free_port,
    gunicorn_args,
    percentile,
    rss_mb,
    worker_pids,
)
from bench.servers import RedisServer
from simulator import events
from simulator.contract import ContractChecker
from simulator.platform import EXTENSION_KEY, create_platform_app, message_text, run_platform_in_thread

# LINE's limits for one reply (Messaging API reference): the contract checks enforce the JSON schema's
# (5 messages, 5,000 characters per text); the Flex sizes are in the docs only, so they are checked here.
MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_BUBBLE_BYTES = 30_000
MAX_CAROUSEL_BYTES = 50_000
MAX_BUBBLES = 12


class Platform:
    """The fake LINE platform in this process, every reply tied to its token.

    It answers at once, as api.line.me would, and each reply is checked against LINE's
    OpenAPI spec by :meth:`Line.send` afterwards: checked inside the platform, a ten-card
    carousel's validation (≈ 20 ms) sat in the bot's round trip and was timed as the bot's."""

    def __init__(self, token: str, secret: str):
        self.app = create_platform_app(channel_access_token=token, channel_secret=secret, check_contract=False,
                                       reply_token_ttl=3600)
        self.state = ChaosPlatformState(channel_access_token=token, channel_secret=secret, check_contract=False,
                                        reply_token_ttl=3600)
        self.checker = ContractChecker()
        self.app.extensions[EXTENSION_KEY] = self.state
        self.server, self.url = run_platform_in_thread(self.app)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fits(messages: list[dict[str, Any]]) -> list[str]:
    """What in one reply LINE would refuse or the user would not see whole; empty when it fits."""
    problems = []
    if len(messages) > MAX_MESSAGES:
        problems.append(f"{len(messages)} messages > {MAX_MESSAGES}")
    for m in messages:
        if m.get("type") == "text":
            text = str(m.get("text", ""))
            if utf16_len(text) > MAX_TEXT:
                problems.append(f"text of {utf16_len(text)} chars > {MAX_TEXT}")
            elif utf16_len(text) >= MAX_TEXT - 1 and text.endswith("…"):
                problems.append("text clipped at LINE's 5,000 characters")
        elif m.get("type") == "flex":
            contents = m.get("contents") or {}
            size = len(json.dumps(contents, ensure_ascii=False, separators=(",", ":")).encode())
            if contents.get("type") == "carousel":
                bubbles = contents.get("contents") or []
                if len(bubbles) > MAX_BUBBLES:
                    problems.append(f"carousel of {len(bubbles)} bubbles > {MAX_BUBBLES}")
                if size > MAX_CAROUSEL_BYTES:
                    problems.append(f"carousel of {size} bytes > {MAX_CAROUSEL_BYTES}")
            elif size > MAX_BUBBLE_BYTES:
                problems.append(f"bubble of {size} bytes > {MAX_BUBBLE_BYTES}")
    return problems


@dataclass
class Sent:
    """One event: its HTTP status and time, and the reply it got."""

    status: int | str
    ms: float
    texts: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    via: str = "none"  # reply / push (the reply was refused or late) / none
    problems: list[str] = field(default_factory=list)


@dataclass
class ScaleStack:
    """Redis + platform + gunicorn (2 workers) + RQ worker against one database URL."""

    name: str
    dir: Path
    database_url: str
    keys: str
    signing_key: str
    program_config: Path
    workers: int = 2
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    redis: RedisServer | None = None
    platform: Platform | None = None
    gunicorn: Child | None = None
    worker: Child | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> ChaosPlatformState:
        assert self.platform is not None
        return self.platform.state

    def start(self) -> "ScaleStack":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(root=self.dir / "redis")
        (self.dir / "redis").mkdir(exist_ok=True)
        self.redis.start()
        self._purge_taken_today()
        self.platform = Platform(self.token, self.secret)
        self.port = free_port()
        self.gunicorn = Child(f"gunicorn {self.name}", gunicorn_args("bot:wsgi_app()", self.port, self.workers),
                              env=self.env(), log_path=self.dir / "gunicorn.log")
        self.worker = Child(f"worker {self.name}", [sys.executable, str(ROOT / "bot.py"), "worker"],
                            env=self.env(), log_path=self.dir / "worker.log")
        wait_healthy(self.url, self.gunicorn, timeout=60)
        return self

    def _purge_taken_today(self) -> None:
        """Take today's retention-purge key, so the worker does not purge at start-up: the benchmark
        times ``bot.py purge`` itself, and a startup purge that holds SQLite's write lock while RQ forks
        its scheduler leaves that lock held for good (the child inherits the lock file; see the report)."""
        from handlers.jobs import PURGE_EVERY, PURGE_JOB
        from storage.sessions import KeyBuilder

        assert self.redis is not None
        self.redis.client().set(KeyBuilder().daily(PURGE_JOB), str(time.time()),
                                ex=int(PURGE_EVERY.total_seconds()))

    def env(self, program_config: Path | None = None) -> dict[str, str]:
        assert self.platform is not None and self.redis is not None
        env = env_without(["REDIS_URL", "DATABASE_URL", "DATA_DIR", "PORT"])
        env.update(
            LINE_CHANNEL_SECRET=self.secret, LINE_CHANNEL_ACCESS_TOKEN=self.token,
            LINE_API_BASE_URL=self.platform.url, LINE_DATA_API_BASE_URL=self.platform.url,
            DATA_ENCRYPTION_KEYS=self.keys, SIGNING_KEY=self.signing_key,
            REDIS_URL=self.redis.url, DATABASE_URL=self.database_url, DATA_DIR=str(self.dir / "data"),
            PROGRAM_CONFIG=str(program_config or self.program_config), PORT=str(self.port or 8000),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{self.port or 8000}", LOG_STDOUT="0",
        )
        return env

    def gunicorn_workers(self) -> list[int]:
        assert self.gunicorn is not None
        return worker_pids(self.gunicorn.pid)

    def worker_rss_mb(self) -> float:
        """The RQ worker's own RSS (its per-job work horses come and go)."""
        return rss_mb(self.worker.pid) if self.worker is not None else 0.0

    def stop(self) -> None:
        for child in (self.worker, self.gunicorn):
            if child is not None:
                try:
                    child.stop()
                except Exception:
                    pass
        if self.platform is not None:
            self.platform.stop()
        if self.redis is not None:
            self.redis.remove()


class Line:
    """LINE towards the bot: signed events, one connection, each reply found by its token."""

    def __init__(self, stack: ScaleStack):
        self.stack = stack
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def send(self, user: str, kind: str, *, text: str | None = None, lat: float = 0.0, lng: float = 0.0,
             address: str | None = None, data: str | None = None, wait_push_s: float = 3.0,
             inspect: bool = True) -> Sent:
        """One event; with ``inspect``, the reply found and checked (``SteadyLoad`` needs only the
        status and the time: its checking, in this process, competed with the timing threads)."""
        state = self.stack.state
        token = state.issue_reply_token(user)
        if kind == "follow":
            event = events.follow(user, token)
        elif kind == "location":
            event = events.location(user, lat, lng, token, address=address)
        elif kind == "postback":
            event = events.postback(user, str(data), token)
        else:
            event = events.text(user, str(text), token)
        body = events.body([event])
        with state.lock:
            mark, violations = len(state.deliveries), len(state.violations)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "LineBotWebhook/2.0",
                   "x-line-signature": events.sign(body, self.stack.secret)}
        t0 = time.perf_counter()
        try:
            r = self.http.post(self.stack.url + "/callback", data=body.encode(), headers=headers, timeout=60)
            status: int | str = r.status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        ms = (time.perf_counter() - t0) * 1000
        sent = Sent(status, ms)
        if not inspect:
            return sent
        delivery = self._reply(token, user, mark, wait_push_s)
        if delivery is not None:
            sent.via = str(delivery["via"])
            sent.messages = list(delivery["messages"])
            sent.texts = [message_text(m) for m in sent.messages]
            sent.problems = fits(sent.messages)
        with state.lock:
            refused = [v["violations"][0] for v in state.violations[violations:] if v.get("violations")]
        if delivery is not None:  # what LINE's spec refuses, checked here rather than inside the round trip
            path = "/v2/bot/message/reply" if sent.via == "reply" else "/v2/bot/message/push"
            body = {"replyToken": token, "messages": sent.messages} if sent.via == "reply" else \
                {"to": user, "messages": sent.messages}
            assert self.stack.platform is not None
            refused += [str(v) for v in self.stack.platform.checker.violations("POST", path, body)]
        sent.problems += [f"refused by the contract check: {v[:120]}" for v in refused]
        if delivery is None:
            sent.problems.append("no reply reached the platform")
        elif sent.via != "reply":
            sent.problems.append(f"answered by {sent.via}, not by the reply")
        return sent

    def _reply(self, token: str, user: str, mark: int, wait_s: float) -> dict[str, Any] | None:
        """The reply that used ``token``; else (a refused reply became a push) the next push to ``user``."""
        state = self.stack.state
        deadline = time.monotonic() + wait_s
        while True:
            with state.lock:
                new = state.deliveries[mark:]
            for d in new:
                if d.get("replyToken") == token:
                    return d
            pushed = [d for d in new if d["to"] == user and d["via"] != "reply"]
            if pushed:
                return pushed[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


@dataclass
class PhaseResult:
    name: str
    sent: list[Sent]
    cpu_ms: float  # gunicorn workers' CPU per event

    @property
    def latencies(self) -> list[float]:
        return [s.ms for s in self.sent]

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def errors(self, expect: str | None = None) -> list[str]:
        out = []
        for s in self.sent:
            if s.status != 200:
                out.append(f"HTTP {s.status}")
            elif expect is not None and not any(expect in t for t in s.texts):
                out.append(f"wanted {expect!r}, got {' / '.join(s.texts)[:160]!r}")
            elif any("エラーが発生" in t for t in s.texts):
                out.append(f"error reply: {' / '.join(s.texts)[:160]!r}")
        return out


def merge(name: str, parts: list[PhaseResult]) -> PhaseResult:
    """One size's parts of a step over the rounds, as one (the CPU per event weighted by events)."""
    sent = [s for p in parts for s in p.sent]
    cpu = sum(p.cpu_ms * len(p.sent) for p in parts) / max(1, len(sent))
    return PhaseResult(name, sent, cpu)


def phase_across(name: str, runs: Sequence[tuple[ScaleStack, Sequence[Callable[[], Sent]]]]) -> list[PhaseResult]:
    """One step (one kind of event for many users) at several sizes at once, event by event in
    turn (the first of each, then the second of each…): a stall of the VM meets every size alike,
    not a run of one size's events. Each stack's gunicorn workers' CPU time is read over the whole
    step, per event: they idle while the other sizes work."""
    pids = [stack.gunicorn_workers() for stack, _ in runs]
    before = [cpu_seconds(p) for p in pids]
    sent: list[list[Sent]] = [[] for _ in runs]
    for k in range(max((len(sends) for _, sends in runs), default=0)):
        for i, (_, sends) in enumerate(runs):
            if k < len(sends):
                sent[i].append(sends[k]())
    return [PhaseResult(name, sent[i], (cpu_seconds(pids[i]) - before[i]) * 1000 / max(1, len(sent[i])))
            for i in range(len(runs))]


@dataclass
class CliRun:
    args: list[str]
    ms: float
    peak_rss_mb: float
    exit_code: int
    output: str


def run_cli(args: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> CliRun:
    """``bot.py <args>``: wall time, and the child's own peak RSS (its ``VmHWM``)."""
    with log.open("ab") as out:
        out.write(f"\n$ bot.py {' '.join(args)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), *args], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        ms = (time.perf_counter() - t0) * 1000
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    text = log.read_text(encoding="utf-8", errors="replace").rsplit(f"$ bot.py {' '.join(args)}\n", 1)[-1]
    # wait4's ru_maxrss is no use here: Linux carries the parent's RSS at fork into the child's
    # high-water mark across exec, so every CLI run "peaked" at the bench's own size (176 MB after
    # seeding 10,000 experts). VmHWM belongs to the program the child runs; it is read while it runs.
    return CliRun(args, ms, (peak_kb or usage.ru_maxrss) / 1024, proc.returncode, text.strip()[-400:])


def _high_water_kb(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``), 0 when it cannot be read (gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class SteadyLoad:
    """Registration answers at a fixed pace from ``threads`` threads, until stopped.

    Each thread walks fresh users through follow → 同意する → 機関コード → 氏名 →
    フリガナ; every result is kept with the time it was sent, so a window
    (idle, during the jobs) can be read afterwards.
    """

    def __init__(self, stack: ScaleStack, code: str, label: str, per_second: float = 8.0, threads: int = 2):
        self.stack, self.code, self.label = stack, code, label
        self.interval = threads / per_second
        self.threads = threads
        self.results: list[tuple[float, int | str, float]] = []  # (sent at, status, ms)
        self.users: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> "SteadyLoad":
        for t in range(self.threads):
            worker = threading.Thread(target=self._run, args=(t,), name=f"steady-{t}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, t: int) -> None:
        from bench.scale_seed import line_id

        line = Line(self.stack)
        steps: list[tuple[str, str | None]] = [("follow", None), ("text", "同意する"), ("text", self.code),
                                               ("text", "佐藤 花子"), ("text", "さとう はなこ")]
        n = 0
        try:
            while not self._stop.is_set():
                user = line_id(f"steady-{self.label}-{t}", n)
                n += 1
                with self._lock:
                    self.users.append(user)
                for kind, text in steps:
                    if self._stop.is_set():
                        return
                    started = time.monotonic()
                    sent = line.send(user, kind, text=text, inspect=False)
                    with self._lock:
                        self.results.append((started, sent.status, sent.ms))
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            line.close()

    def window(self, start: float, end: float) -> list[tuple[float, int | str, float]]:
        with self._lock:
            return [r for r in self.results if start <= r[0] < end]

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=70)


# --- the announce's outbox --------------------------------------------------------------------


def announce_program(tmp: Path) -> Path:
    """program.toml with a new conditions version: what ``conditions announce`` is run after."""
    path = tmp / "program-announce.toml"
    if not path.exists():
        text = (ROOT / "program.toml").read_text(encoding="utf-8")
        new, n = re.subn(r'(\[conditions\]\s*\nversion\s*=\s*")([^"]+)(")', r"\g<1>\g<2>-scale\g<3>", text, count=1)
        if not n:
            raise RuntimeError("program.toml: no [conditions] version to change")
        path.write_text(new, encoding="utf-8")
    return path


def outbox_pending(after_id: int = 0) -> int:
    """Pushes not yet sent among the outbox rows written after ``after_id``."""
    from storage.models import Outbox

    return int(Outbox.select().where((Outbox.status == "pending") & (Outbox.id > after_id)).count())


def outbox_last_id() -> int:
    from peewee import fn

    from storage.models import Outbox

    return int(Outbox.select(fn.MAX(Outbox.id)).scalar() or 0)


def pending_reasons() -> dict[str, int]:
    """What is still waiting in the outbox, by reason (for the report)."""
    from peewee import fn

    from storage.models import Outbox

    rows = (Outbox.select(Outbox.reason, fn.COUNT(Outbox.id)).where(Outbox.status == "pending")
            .group_by(Outbox.reason).tuples())
    return {str(reason): int(n) for reason, n in rows}
