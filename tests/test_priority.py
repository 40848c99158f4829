"""Long maintenance work runs below the webhook's CPU priority (``handlers.priority``)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from handlers.priority import BACKGROUND_NICE, lower_priority

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_cli_job_lowers_its_whole_process():
    # In a child: a process never gets its priority back, and the test runner must keep its own.
    code = ("import os; from handlers.priority import lower_priority; before = os.getpriority(os.PRIO_PROCESS, 0); "
            "lower_priority(); print(os.getpriority(os.PRIO_PROCESS, 0) - before, "
            "os.sched_getscheduler(0) == os.SCHED_IDLE)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(BACKGROUND_NICE), "True"]  # and only on a CPU nothing else wants


def test_the_workers_purge_thread_lowers_only_itself():
    seen: dict[str, int] = {}

    def purge_thread() -> None:
        lower_priority(this_thread_only=True)
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["policy"] = os.sched_getscheduler(threading.get_native_id())

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=purge_thread)
    t.start()
    t.join()
    assert seen["thread"] == min(main + BACKGROUND_NICE, 19) and seen["policy"] == os.SCHED_IDLE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the worker's jobs keep theirs
    assert os.sched_getscheduler(threading.get_native_id()) != os.SCHED_IDLE


def test_a_long_job_lowers_its_priority_once_and_serving_does_not():
    code = ("import os, sys; from handlers.priority import lower_priority, lower_priority_for_job; "
            "before = os.getpriority(os.PRIO_PROCESS, 0); lower_priority_for_job(sys.argv[1:]); "
            "lower_priority(); print(os.getpriority(os.PRIO_PROCESS, 0) - before)")
    for argv, lowered in ((["export", "fees", "--month", "2026-11"], BACKGROUND_NICE),
                          (["conditions", "announce"], BACKGROUND_NICE), (["purge", "--dry-run"], BACKGROUND_NICE),
                          (["--verbose", "keys", "rotate"], BACKGROUND_NICE)):
        out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and int(out.stdout) == lowered, (argv, out.stdout, out.stderr)
    probe = ("import os, sys; from handlers.priority import lower_priority_for_job; before = os.getpriority(os.PRIO_PROCESS, 0); "
             "lower_priority_for_job(sys.argv[1:]); print(os.getpriority(os.PRIO_PROCESS, 0) - before)")
    for argv in (["serve"], ["worker"], ["logs", "--flow", "purge"], ["conditions"]):
        out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and int(out.stdout) == 0, (argv, out.stdout, out.stderr)


def test_bot_py_lowers_a_jobs_priority_before_it_imports_the_cli():
    out = subprocess.run([sys.executable, "-X", "importtime", "bot.py", "export", "fees", "--month", "2026/11"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-500:]  # the month refused: the command ran
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert imported.index("handlers.priority") < imported.index("handlers.cli"), imported[:40]
