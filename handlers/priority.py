"""Long maintenance work gives the CPU to the webhook first.

The retention purge, ``conditions announce``, the exports and the key
rotation walk the whole program; on a small host they compete with the
gunicorn workers for the same cores. Measured by ``bench.scale`` on 2 cores at
10,000 experts (SQLite, the first purge of a year's 340,000 event ids): a
steady webhook load's p99 was 3.4× its idle p99 while the jobs ran at the
normal priority, 1.9× with the purge at nice 10 — the job took 19.5 s instead
of 18.4 s. The write lock is held one short batch at a time, so a niced job
holding it is never kept off the CPU for long: the webhooks waiting for it are
asleep, not competing. On PostgreSQL at nice 10 the ratio was still 2.1–2.4 in
two runs; in the SCHED_IDLE class as well, 1.29 and 1.44.
"""
from __future__ import annotations

import os
import threading

BACKGROUND_NICE = 10
# The CLI's long jobs: ``bot.py`` lowers their priority before it imports anything else.
JOBS = (("purge",), ("export",), ("conditions", "announce"), ("keys", "rotate"), ("data", "seal"))
_process_lowered = False


def lower_priority(*, this_thread_only: bool = False) -> None:
    """Run this process (a CLI job) — or only the calling thread (the worker's purge thread:
    Linux schedules every thread as a task of its own) — ``BACKGROUND_NICE`` steps lower, once.
    Best effort: where the platform says no, the job just runs at the usual priority."""
    global _process_lowered
    try:
        if this_thread_only:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE, 19))
            _idle_class(tid)
        elif not _process_lowered:
            os.nice(BACKGROUND_NICE)
            _process_lowered = True
            _idle_class(0)
    except (OSError, AttributeError):
        pass


def _idle_class(tid: int) -> None:
    """Linux's SCHED_IDLE on top of the nice value: the task runs only on a CPU nothing else
    wants, so a webhook never shares a core with it (at nice 10 a job still took about a tenth
    of a busy core). A job holding SQLite's write lock is not starved by the webhooks waiting
    for that lock: they sleep, and their core is free for it."""
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):  # not Linux, or refused: the nice value alone
        pass


def lower_priority_for_job(argv: list[str]) -> None:
    """``bot.py``'s first step: a long job's start-up — Python, the program file's schema, the
    database driver — runs at its lowered priority too. In ``bench.scale`` the imports were
    0.25 s of CPU at the webhook's priority before the command lowered it."""
    words = tuple(arg for arg in argv if not arg.startswith("-"))
    if any(words[:len(job)] == job for job in JOBS):
        lower_priority()
