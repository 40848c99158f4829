"""Shared pieces for benchmarks: child processes, the fake platform, load, statistics.

Everything here is loopback only and bounded: every child process is
started in its own session (Ctrl-C reaches only the benchmark, which then
stops them in order), every request has a timeout and every load phase a
deadline.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- child processes ----------------------------------------------------------------------


class Child:
    """A child process with its output in a file; ``stop()`` is idempotent."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None,
                 log_path: Path, cwd: Path = ROOT):
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.proc = subprocess.Popen(
            list(args), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to the benchmark only; it stops us in order
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()


def wait_http(url: str, child: Child, timeout: float = 30.0) -> None:
    """Until ``url`` answers anything at all (a 404/405 means the server is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not answer on {url} within {timeout:.0f}s:\n{child.tail()}")


def gunicorn_args(target: str, port: int, workers: int = 2) -> list[str]:
    """The one gunicorn command line every target runs under."""
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync",
            "--bind", f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "5",
            "--log-level", "warning", target]


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn worker processes (children of the master)."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(master_pid).children()]
    except ImportError:
        out = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master_pid}\n" in text:
                out.append(int(status.parent.name))
        return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def max_worker_rss_mb(master_pid: int) -> float:
    return max((rss_mb(p) for p in worker_pids(master_pid)), default=0.0)


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _process_cpu_clock(pid: int) -> int:
    """Linux's CPU-time clock of a whole process (every thread), as ``clock_getcpuclockid`` makes it."""
    return ((~pid) << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system, every thread) of ``pids`` so far.

    Read from the process CPU clock, in nanoseconds: /proc/<pid>/stat counts 10 ms ticks, which
    over a phase of 30 events is 0.33 ms per event — coarser than what is measured. Falls back to
    /proc/<pid>/stat where the clock cannot be read."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            total += time.clock_gettime(_process_cpu_clock(pid))
            continue
        except (OSError, OverflowError):
            pass
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


# --- the fake platform, over HTTP ---------------------------------------------------------


class PlatformClient:
    """The ``/_sim`` control endpoints of ``simulator.platform``."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def reset(self) -> None:
        self.http.post(f"{self.base_url}/_sim/reset", timeout=10).raise_for_status()

    def reply_tokens(self, user_ids: Sequence[str], threads: int = 4) -> list[str]:
        """One live reply token per entry of ``user_ids`` (issued by the platform)."""
        local = threading.local()

        def issue(user_id: str) -> str:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            r = local.s.post(f"{self.base_url}/_sim/reply-token", json={"userId": user_id}, timeout=10)
            r.raise_for_status()
            return str(r.json()["replyToken"])

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(issue, user_ids))

    def deliveries(self) -> list[dict[str, Any]]:
        r = self.http.get(f"{self.base_url}/_sim/messages", timeout=30)
        r.raise_for_status()
        return list(r.json())

    def close(self) -> None:
        self.http.close()




# --- load --------------------------------------------------------------------------------


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]


@dataclass
class LoadResult:
    concurrency: int
    wall_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # indices of users whose walk ran
    users_skipped: int = 0  # deadline reached before they started

    @property
    def events(self) -> int:
        return len(self.latencies_ms)

    @property
    def eps(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def run_load(url: str, scripts: Sequence[Sequence[Request]], concurrency: int, *,
             deadline_s: float, timeout_s: float = 10.0) -> LoadResult:
    """Walk every user's script in order (next event only after the previous
    response) with ``concurrency`` threads, one ``requests.Session`` each.

    Users not started before ``deadline_s`` are skipped (and counted), so a
    phase is bounded in time whatever the server does.
    """
    lock = threading.Lock()
    result = LoadResult(concurrency=concurrency, wall_s=0.0)
    local = threading.local()
    sessions: list[requests.Session] = []
    started = time.perf_counter()
    stop_at = time.monotonic() + deadline_s

    def walk(index: int, script: Sequence[Request]) -> None:
        if time.monotonic() > stop_at:
            with lock:
                result.users_skipped += 1
            return
        if not hasattr(local, "s"):
            local.s = requests.Session()
            with lock:
                sessions.append(local.s)
        lat, codes, errs = [], [], []
        for req in script:
            t0 = time.perf_counter()
            try:
                r = local.s.post(url, data=req.body, headers=req.headers, timeout=timeout_s)
                code = str(r.status_code)
                if r.status_code != 200:
                    errs.append(f"HTTP {r.status_code}: {r.text[:120]}")
            except requests.RequestException as exc:
                code = type(exc).__name__
                errs.append(f"{code}: {str(exc)[:120]}")
            lat.append((time.perf_counter() - t0) * 1000)
            codes.append(code)
        with lock:
            result.latencies_ms.extend(lat)
            for c in codes:
                result.statuses[c] = result.statuses.get(c, 0) + 1
            result.errors.extend(errs)
            result.done.append(index)

    try:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="load") as pool:
            for f in [pool.submit(walk, i, s) for i, s in enumerate(scripts)]:
                f.result()
    finally:
        result.wall_s = time.perf_counter() - started
        for s in sessions:
            s.close()
    return result


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def rnd(x: float, nd: int = 2) -> float:
    return round(float(x), nd)


def install_sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM → KeyboardInterrupt, so ``finally`` blocks clean up; returns an undo."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def env_without(names: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
