"""Long maintenance work gives the CPU to the webhook first.

The retention purge, ``conditions announce``, the exports and the key
rotation walk the whole program; on a small host they compete with the
gunicorn workers for the same cores. Measured by ``bench.scale`` on 2 cores at
10,000 experts (SQLite, the first purge of a year's 340,000 event ids): a
steady webhook load's p99 was 3.4× its idle p99 while the jobs ran at the
normal priority, 1.9× with the purge at nice 10 — the job took 19.5 s instead
of 18.4 s. The write lock is held one short batch at a time, so a niced job
holding it is never kept off the CPU for long: the webhooks waiting for it are
asleep, not competing.
"""
from __future__ import annotations

import os
import threading

BACKGROUND_NICE = 10


def lower_priority(*, this_thread_only: bool = False) -> None:
    """Run this process (a CLI job) — or only the calling thread (the worker's purge thread:
    Linux schedules every thread as a task of its own) — ``BACKGROUND_NICE`` steps lower.
    Best effort: where the platform says no, the job just runs at the usual priority."""
    try:
        if this_thread_only:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE, 19))
        else:
            os.nice(BACKGROUND_NICE)
    except (OSError, AttributeError):
        pass
