"""A gunicorn config that profiles each worker's requests with cProfile (``bench.webhook --profile``).

Only request handling is profiled (``pre_request`` → ``post_request``), by
CPU time (``time.process_time``, so waiting on a socket or a lock costs
nothing), after the first ``BENCH_PROFILE_SKIP`` requests of each worker
(the warm-up: first imports, connections). Each worker writes
``<BENCH_PROFILE_DIR>/<label>-<pid>.prof`` at its graceful exit;
``bench.webhook`` merges them and prints the top functions by own time.
Profiling slows the worker: the throughput figures of a profiled run are not
the benchmark's figures.
"""
from __future__ import annotations

import cProfile
import os
import time
from typing import Any

_profile = cProfile.Profile(time.process_time)
_seen = 0


def pre_request(worker: Any, req: Any) -> None:
    global _seen
    _seen += 1
    if _seen > int(os.environ.get("BENCH_PROFILE_SKIP", "50")):
        _profile.enable()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    _profile.disable()


def worker_exit(server: Any, worker: Any) -> None:
    _profile.disable()
    label = os.environ.get("BENCH_PROFILE_LABEL", "worker")
    _profile.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"{label}-{os.getpid()}.prof"))
