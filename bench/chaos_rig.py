"""The chaos run's rig: the fake LINE platform in a thread, and one bot stack per fault.

A ``Stack`` is everything one fault runs against, started fresh and removed
afterwards: its own PostgreSQL cluster (``bench.servers.PostgresCluster``),
its own Redis (a ``RedisServer``, with or without AOF, or a ``SentinelSet``),
the bot under ``gunicorn -w N -k sync`` and the RQ worker (``bot.py worker``)
as child processes, and the fake platform in a thread of this process.

The platform runs in-process (``simulator.platform.run_platform_in_thread``)
so the run can see which reply token each reply used: ``ChaosPlatformState``
adds the token to each reply delivery, which ties every reply to exactly one
webhook event, and remembers which connection an injected delay slowed down
(the worker-kill fault kills the gunicorn worker that owns it).
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from bench.common import ROOT, Child, env_without, free_port, gunicorn_args
from bench.servers import PostgresCluster, RedisServer, SentinelSet
from simulator.platform import EXTENSION_KEY, Failure, PlatformState, create_platform_app, run_platform_in_thread

INSTITUTION = "カオス商工会"
REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"


# --- the fake platform, in this process ---------------------------------------------------


@dataclass
class Delayed:
    """A request an injected failure slowed down: who sent it, and for which token."""

    port: int | None
    token: str | None
    path: str
    at: float


class ChaosPlatformState(PlatformState):
    """``PlatformState`` that also records each reply's token and each delayed request."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._tl = threading.local()
        self.delayed: list[Delayed] = []
        self.delayed_event = threading.Event()

    def use_reply_token(self, token: str) -> str | None:
        user_id = super().use_reply_token(token)
        self._tl.token = token if user_id is not None else None
        return user_id

    def record_delivery(self, to: str, via: str, messages: list[dict[str, Any]],
                        retry_key: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            delivery = super().record_delivery(to, via, messages, retry_key, request_id)
            if via == "reply":
                delivery["replyToken"] = getattr(self._tl, "token", None)
            return delivery

    def take_failure(self, path: str) -> Failure | None:
        failure = super().take_failure(path)
        if failure is not None and failure.delay:
            from flask import request

            token = None
            try:
                body = json.loads(request.get_data() or b"null")
                token = body.get("replyToken") if isinstance(body, dict) else None
            except ValueError:
                pass
            port = request.environ.get("REMOTE_PORT")
            with self.lock:
                self.delayed.append(Delayed(int(port) if port else None, token, path, time.time()))
            self.delayed_event.set()
        return failure

    def pending_failures(self) -> int:
        with self.lock:
            return sum(f.remaining for f in self._failures)

    def all_deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(d) for d in self.deliveries]


class Platform:
    def __init__(self, token: str, secret: str):
        self.app = create_platform_app(channel_access_token=token, channel_secret=secret,
                                       check_contract=False, reply_token_ttl=3600)
        self.state = ChaosPlatformState(channel_access_token=token, channel_secret=secret,
                                        check_contract=False, reply_token_ttl=3600)
        self.app.extensions[EXTENSION_KEY] = self.state
        self.server, self.url = run_platform_in_thread(self.app)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Redis for the harness itself (queue checks), sentinel-aware ---------------------------


def harness_redis(url: str) -> redis.Redis:
    """A client for ``url``; ``redis+sentinel://h1:p1,h2:p2/name/db`` asks the sentinels."""
    if url.startswith("redis+sentinel://"):
        from redis.sentinel import Sentinel

        rest = url[len("redis+sentinel://"):]
        hosts, _, path = rest.partition("/")
        name, _, db = path.partition("/")
        nodes = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts.split(",")]
        sentinel = Sentinel(nodes, socket_timeout=1, socket_connect_timeout=1)
        return sentinel.master_for(name, db=int(db or 0), socket_timeout=1, socket_connect_timeout=1)
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def rq_backlog(client: redis.Redis) -> int:
    """Jobs queued, running or scheduled (retries) in the bot's two queues."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    total = 0
    for name in ("events", "outbox"):
        q = Queue(name, connection=client)
        total += q.count + StartedJobRegistry(queue=q).count + ScheduledJobRegistry(queue=q).count
    return total


# --- the database, read with the app's own storage code ------------------------------------


class Db:
    """``storage.db`` bound to one stack's PostgreSQL; reconnects after a fault."""

    def __init__(self, url: str, keys: str, signing_key: str):
        self.url = url
        self.keys = keys
        self.signing_key = signing_key

    def __enter__(self) -> "Db":
        from storage import db as storage_db
        from storage import sealed
        from storage.crypto import FieldCrypto

        storage_db.bind(self.url)
        # The bot's keys: its drafts and names are sealed at rest (storage.sealed).
        sealed.configure(FieldCrypto(tuple(k for k in self.keys.split(",") if k), self.signing_key))
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        from storage.db import database

        try:
            database.close()
        except Exception:  # a dead connection: nothing to close
            pass

    def fresh(self) -> None:
        from storage import db as storage_db

        self.close()
        storage_db.bind(self.url)

    def processed(self, event_ids: list[str]) -> set[str]:
        from storage.models import ProcessedEvent

        self.fresh()
        found: set[str] = set()
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i:i + 500]
            found.update(r.webhook_event_id for r in
                         ProcessedEvent.select(ProcessedEvent.webhook_event_id)
                         .where(ProcessedEvent.webhook_event_id.in_(chunk)))
        return found

    def drafts(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each user's ``Expert.draft``, decrypted if it is not plaintext (``storage.crypto``)."""
        from storage.crypto import FieldCrypto
        from storage.models import Expert, LineUser

        self.fresh()
        crypto = FieldCrypto(tuple(k for k in self.keys.split(",") if k), self.signing_key)
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(user_ids), 500):
            rows = (Expert.select(Expert, LineUser).join(LineUser)
                    .where(LineUser.line_user_id.in_(user_ids[i:i + 500])))
            for expert in rows:
                out[expert.user.line_user_id] = _plain(expert.draft, crypto)
        return out

    def outbox(self) -> list[Any]:
        from storage.models import Outbox

        self.fresh()
        return list(Outbox.select().order_by(Outbox.id))

    def pending_outbox(self) -> int:
        from storage.models import Outbox

        return Outbox.select().where(Outbox.status == "pending").count()


def _plain(draft: Any, crypto: Any) -> dict[str, Any]:
    """A draft as plaintext: encrypted as a whole, per value, or not at all."""
    def dec(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("gAAAA"):
            try:
                text = crypto.decrypt(value)
            except Exception:
                return value
            try:
                return json.loads(text)
            except ValueError:
                return text
        return value

    draft = dec(draft)
    if isinstance(draft, str):
        try:
            draft = json.loads(draft)
        except ValueError:
            return {}
    return {k: dec(v) for k, v in draft.items()} if isinstance(draft, dict) else {}


# --- one stack per fault -------------------------------------------------------------------


@dataclass
class Stack:
    """PostgreSQL + Redis + platform + gunicorn + RQ worker, all ours, removed by ``stop()``."""

    name: str
    tmp: Path
    workers: int = 2
    redis_mode: str = "plain"  # plain / aof / sentinel
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    keys: str = ""
    signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pg: PostgresCluster | None = None
    redis: RedisServer | None = None
    sentinels: SentinelSet | None = None
    platform: Platform | None = None
    gunicorn: Child | None = None
    worker: Child | None = None
    code: str = ""
    institution_id: int = 0
    port: int = 0
    worker_restarts: int = 0
    worker_exits: list[str] = field(default_factory=list)
    _watch_stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        if self.sentinels is not None:
            return self.sentinels.url
        assert self.redis is not None
        return self.redis.url

    @property
    def state(self) -> ChaosPlatformState:
        assert self.platform is not None
        return self.platform.state

    def db(self) -> Db:
        assert self.pg is not None
        return Db(self.pg.url, self.keys, self.signing_key)

    def start(self) -> "Stack":
        from cryptography.fernet import Fernet

        self.dir = self.tmp / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keys = Fernet.generate_key().decode()
        self.pg = PostgresCluster()  # assigned before starting, so stop() removes a half-started one
        self.pg.init()
        if self.redis_mode == "sentinel":
            self.sentinels = SentinelSet()
            self.sentinels.start()
        else:
            self.redis = RedisServer(appendonly=self.redis_mode == "aof")
            self.redis.start()
        self.platform = Platform(self.token, self.secret)
        self._init_db()
        self.port = free_port()
        self.gunicorn = Child(f"gunicorn {self.name}", gunicorn_args("bot:wsgi_app()", self.port, self.workers),
                              env=self.env("gunicorn"), log_path=self.dir / "gunicorn.log")
        self.worker = self._start_worker()
        wait_healthy(self.url, self.gunicorn, timeout=45)
        self._watcher = threading.Thread(target=self._watch, name=f"watch-{self.name}", daemon=True)
        self._watcher.start()
        return self

    def env(self, process: str) -> dict[str, str]:
        assert self.platform is not None and self.pg is not None
        env = env_without(["REDIS_URL", "DATABASE_URL", "DATA_DIR", "PORT"])
        env.update(
            LINE_CHANNEL_SECRET=self.secret, LINE_CHANNEL_ACCESS_TOKEN=self.token,
            LINE_API_BASE_URL=self.platform.url, LINE_DATA_API_BASE_URL=self.platform.url,
            DATA_ENCRYPTION_KEYS=self.keys, SIGNING_KEY=self.signing_key,
            REDIS_URL=self.redis_url, DATABASE_URL=self.pg.url, DATA_DIR=str(self.dir / "data"),
            PROGRAM_CONFIG=str(ROOT / "program.toml"), PORT=str(self.port or 8000),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{self.port or 8000}", LOG_STDOUT="0",
        )
        return env

    def _init_db(self) -> None:
        from storage import repo
        from storage.migrations import apply_migrations

        with self.db():
            apply_migrations()
            inst = repo.create_institution(INSTITUTION, "よろず")
            self.code, self.institution_id = inst.code, int(inst.id)

    def _start_worker(self) -> Child:
        return Child(f"worker {self.name}", [sys.executable, str(ROOT / "bot.py"), "worker"],
                     env=self.env("worker"), log_path=self.dir / "worker.log")

    def _watch(self) -> None:
        """Restart the RQ worker if it exits, as a supervisor (systemd, Heroku) would; count it."""
        while not self._watch_stop.wait(0.5):
            if self.worker is not None and not self.worker.alive():
                self.worker_exits.append(f"exit {self.worker.proc.returncode}: "
                                         f"{_last_line(self.worker.tail(5))}")
                self.worker.stop()
                self.worker = self._start_worker()
                self.worker_restarts += 1

    def gunicorn_workers(self) -> list[int]:
        from bench.common import worker_pids

        assert self.gunicorn is not None
        return worker_pids(self.gunicorn.pid)

    def stop(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
        for child in (self.worker, self.gunicorn):
            if child is not None:
                try:
                    child.stop()
                except Exception:
                    pass
        if self.platform is not None:
            self.platform.stop()
        for server in (self.sentinels, self.redis, self.pg):
            if server is not None:
                try:
                    server.remove()
                except Exception:
                    pass

    def error_summary(self, top: int = 3) -> list[str]:
        """The bot's most frequent error-level log lines (event: error), with counts."""
        counts: Counter[str] = Counter()
        for path in sorted((self.dir / "data" / "log").glob("*.jsonl")):
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
                    error = " ".join(str(entry.get("error", "")).split())[:100]
                    counts[f"{entry.get('event')}: {error}".rstrip(": ")] += 1
        for child in (self.gunicorn, self.worker):
            if child is not None:
                found = _exception_line(child.tail(200))
                if found:
                    counts[f"[{child.name}] {found}"] += 1
        return [f"{n}× {text}" for text, n in counts.most_common(top)]

    def settle(self, timeout: float, quiet_s: float = 1.0) -> bool:
        """Until no job is queued/running/scheduled, no outbox row pending and nothing new
        delivered for ``quiet_s``; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        client = harness_redis(self.redis_url)
        last: tuple[int, int, int] | None = None
        since = time.monotonic()
        try:
            with self.db() as db:
                while time.monotonic() < deadline:
                    try:
                        backlog = rq_backlog(client)
                    except (redis.RedisError, OSError):
                        backlog = -1
                    try:
                        pending = db.pending_outbox()
                    except Exception:
                        db.fresh()
                        pending = -1
                    sig = (backlog, pending, len(self.state.deliveries))
                    if sig != last:
                        last, since = sig, time.monotonic()
                    elif backlog == 0 and pending == 0 and time.monotonic() - since >= quiet_s:
                        return True
                    time.sleep(0.2)
            return False
        finally:
            client.close()


def _exception_line(text: str) -> str:
    """The last ``SomethingError: …`` line of a log (a traceback's message)."""
    found = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[\w.]+(Error|Exception|Exit)\b.*", ln)]
    return found[-1][:200] if found else ""


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def wait_healthy(url: str, child: Child, timeout: float = 45.0) -> None:
    """Until ``/healthz`` answers 200 (the bot reaches Redis and the database)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            tail = child.tail(200)
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}: "
                               f"{_exception_line(tail) or _last_line(tail)}")
        try:
            r = requests.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code} {r.text[:120]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(f"{child.name}: /healthz not 200 within {timeout:.0f}s ({last}): {_last_line(child.tail(20))}")


def find_pid_by_port(pids: list[int], port: int) -> int | None:
    """The process among ``pids`` with a TCP connection from local ``port``."""
    import psutil

    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == port:
                    return pid
        except (psutil.Error, OSError):
            continue
    return None


def cleanup(tmp: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
