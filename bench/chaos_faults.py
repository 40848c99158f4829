"""Faults that break a server under steady load and time the recovery.

Each function starts its own ``Stack``, runs registration users (``Walkers``)
and a ``Probe``, injects one fault, and returns a ``Row``. The stack is
removed whatever happens (``try/finally``).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos_load import Ledger, Sender
from bench.chaos_rig import REPLY_PATH, Stack, find_pid_by_port
from bench.chaos_users import (
    Probe,
    Walkers,
    account,
    answered_at,
    check_drafts,
    push_times,
    reply_times,
)
from simulator import events


@dataclass
class Opts:
    tmp: Path
    quick: bool = False
    order_gap_ms: float = 10.0  # ordering: ms between one user's requests

    @property
    def give_up(self) -> float:  # LINE-like redelivery gives up after this long
        return 20.0 if self.quick else 60.0

    @property
    def settle(self) -> float:  # the most we wait for queues/outbox to drain after the load
        return 20.0 if self.quick else 45.0

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


BROKEN = "no conversation broken: every answer sent is in its draft field"
REQUIRED = {
    "pg-stop": f"≤5 s from PG accepting connections to /healthz 200 + a webhook applied; 0 lost; 0 dup; {BROKEN}",
    "pg-kill9": f"≤5 s from PG accepting connections to /healthz 200 + a webhook applied; 0 lost; 0 dup; {BROKEN}",
    "ordering": "0 answers in a wrong field; ≤10 % of users with answers not applied (re-asked); 0 dup",
    "redis-hang": f"each user's next message answered ≤2 s after SIGCONT; 0 lost; 0 dup; {BROKEN}",
    "worker-kill": f"that user's next message answered ≤5 s after the kill; 0 lost; 0 dup; {BROKEN}",
    "malformed": "0 × 5xx (or no answer) for every malformed body; the valid events answered; 0 dup",
    "sentinel-failover": "failures only 503 and only during the switch; 200 ≤10 s after the sentinels agree; "
                         "0 lost; 0 dup; no lost session: every answer sent is in its draft field",
    "sentinel-kill-primary": "failures only 503 and only during the switch; 200 ≤10 s after the sentinels agree; "
                             "0 lost; 0 dup; no lost session: every answer sent is in its draft field",
    "redis-kill9-aof": f"≤5 s from Redis answering again to /healthz 200 + a webhook applied; 0 lost; 0 dup; {BROKEN}",
    "redis-kill9-noaof": f"≤5 s from Redis answering again to /healthz 200 + a webhook applied; 0 lost; 0 dup; "
                         f"{BROKEN}",
    "redelivery-x3": f"0 duplicated; 0 lost; {BROKEN}",
    "push-failures": "every push delivered exactly once (one platform delivery per outbox row), none marked "
                     "failed; 0 lost; 0 dup",
}


@dataclass
class Row:
    fault: str
    required: str = ""
    sent: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    recover_s: float | None = None
    ok: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        self.required = self.required or REQUIRED.get(self.fault, "")


@dataclass
class Run:
    """One stack under load: the pieces a steady-load fault needs."""

    stack: Stack
    ledger: Ledger
    sender: Sender
    walkers: Walkers | None = None
    probe: Probe | None = None


def start_run(name: str, opts: Opts, *, walkers: int, probe: bool = True, think: float = 0.05,
              **stack_kw: Any) -> Run:
    stack = Stack(name, opts.tmp, **stack_kw)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    ledger = Ledger()
    sender = Sender(stack.url, stack.secret, ledger, give_up_s=opts.give_up)
    run = Run(stack, ledger, sender)
    if walkers:
        run.walkers = Walkers(stack, sender, walkers, name, think=think).start()
    if probe:
        run.probe = Probe(stack, sender, name).start()
    return run


def finish(run: Run, opts: Opts, row: Row) -> dict[str, Any]:
    """Stop the load, let redelivery finish and queues drain, then count the effects."""
    if run.walkers is not None:
        run.walkers.stop(opts.give_up + 15)
    if run.probe is not None:
        run.probe.stop()
    drained = run.ledger.wait(opts.give_up + 15)
    settled = run.stack.settle(opts.settle)
    acc = account(run.stack, run.ledger.tracked)
    row.sent, row.answered, row.lost, row.duplicated = acc["sent"], acc["answered"], acc["lost"], acc["duplicated"]
    row.extra.update(statuses=run.ledger.statuses(), no_reply=acc["no_reply"])
    if acc["lost_sample"]:
        row.extra["lost_sample"] = acc["lost_sample"]
    if run.walkers is not None:
        drafts = check_drafts(run.stack, run.walkers.registrants, run.ledger.tracked)
        row.extra["drafts"] = drafts
    if not drained:
        row.extra["redelivery_unfinished"] = True
    if not settled:
        row.extra["queues_not_drained"] = True
    errors = run.stack.error_summary()
    if errors:
        row.extra["bot_errors"] = errors
    if run.stack.worker_restarts:
        row.extra["rq_worker_restarts"] = run.stack.worker_restarts
        row.extra["rq_worker_exits"] = run.stack.worker_exits[:3]
    return acc


def stop_run(run: Run | None) -> None:
    if run is None:
        return
    run.sender.halt()
    if run.walkers is not None:
        run.walkers.stop_flag.set()
    if run.probe is not None:
        run.probe.stop_flag.set()
    run.stack.stop()


def wait_recovery(run: Run, t0: float, observe_s: float) -> None:
    """Until the probe saw /healthz 200 and an applied webhook after ``t0``, or ``observe_s``."""
    assert run.probe is not None
    deadline = t0 + observe_s
    while time.time() < deadline:
        if run.probe.recovery(t0, reply_times(run.stack.state.all_deliveries()))[2] is not None:
            return
        time.sleep(0.25)


def broken_users(row: Row) -> int:
    return int(row.extra.get("drafts", {}).get("users_broken", 0))


def common_verdict(row: Row, limit_s: float | None) -> list[str]:
    """What the row misses of: nothing lost, nothing duplicated, no broken conversation,
    recovered within ``limit_s``."""
    misses = []
    if row.lost:
        misses.append(f"{row.lost} lost")
    if row.duplicated:
        misses.append(f"{row.duplicated} duplicated")
    if broken_users(row):
        misses.append(f"{broken_users(row)} users' answers not applied / in a wrong field")
    if limit_s is not None and (row.recover_s is None or row.recover_s > limit_s):
        misses.append(f"recovery {'never seen' if row.recover_s is None else f'{row.recover_s:.2f}s'} > {limit_s:g}s")
    return misses


# --- 1, 2, 8a, 8b, 7: a server goes away and comes back ------------------------------------------


def steady_fault(name: str, opts: Opts, *, inject: Callable[[Stack], tuple[float, dict[str, Any]]],
                 limit_s: float, walkers: int = 6, warm: float = 3.0, observe: float = 15.0,
                 check: Callable[[Run, Row, dict[str, Any]], list[str]] | None = None, **stack_kw: Any) -> Row:
    row = Row(name)
    run = None
    try:
        run = start_run(name, opts, walkers=opts.n(walkers, max(2, walkers // 2)), **stack_kw)
        time.sleep(warm if not opts.quick else warm * 0.7)
        t_fault = time.time()
        t0, info = inject(run.stack)
        info["fault_s"] = round(t0 - t_fault, 2)
        wait_recovery(run, t0, observe)
        time.sleep(2.0)
        finish(run, opts, row)
        assert run.probe is not None
        hs, ws, both = run.probe.recovery(t0, reply_times(run.stack.state.all_deliveries()))
        row.recover_s = both
        row.extra.update(info, healthz_200_after_s=hs, webhook_applied_after_s=ws)
        misses = common_verdict(row, limit_s)
        if check is not None:
            misses += check(run, row, info)
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row


PG_RECOVER = "PG accepting connections (pg_ctl start -w returned) → /healthz 200 and a probe webhook answered+applied"


def pg_stop(opts: Opts) -> Row:
    def inject(stack: Stack) -> tuple[float, dict[str, Any]]:
        assert stack.pg is not None
        stack.pg.stop("fast")
        time.sleep(3.0)
        stack.pg.start()
        return time.time(), {"recover_measures": PG_RECOVER, "down_s": 3.0}

    return steady_fault("pg-stop", opts, inject=inject, limit_s=5.0)


def pg_kill9(opts: Opts) -> Row:
    def inject(stack: Stack) -> tuple[float, dict[str, Any]]:
        assert stack.pg is not None
        stack.pg.kill9()
        time.sleep(1.0)
        stack.pg.start()
        return time.time(), {"recover_measures": PG_RECOVER}

    return steady_fault("pg-kill9", opts, inject=inject, limit_s=5.0)


REDIS_RECOVER = "Redis answering again after restart → /healthz 200 and a probe webhook answered+applied"


def _redis_kill(aof: bool) -> Callable[[Opts], Row]:
    def fault(opts: Opts) -> Row:
        def inject(stack: Stack) -> tuple[float, dict[str, Any]]:
            assert stack.redis is not None
            stack.redis.kill9()
            time.sleep(1.5)
            stack.redis.start()
            return time.time(), {"recover_measures": REDIS_RECOVER, "down_s": 1.5}

        return steady_fault(f"redis-kill9-{'aof' if aof else 'noaof'}", opts, inject=inject, limit_s=5.0,
                            redis_mode="aof" if aof else "plain")
    return fault


redis_kill9_aof = _redis_kill(True)
redis_kill9_noaof = _redis_kill(False)


SENTINEL_RECOVER = "all sentinels agree on the new primary → /healthz 200 and a probe webhook answered+applied"


def _sentinel(kill: bool) -> Callable[[Opts], Row]:
    def fault(opts: Opts) -> Row:
        times: dict[str, float] = {}

        def inject(stack: Stack) -> tuple[float, dict[str, Any]]:
            ss = stack.sentinels
            assert ss is not None
            old = ss.current_primary_port()
            t_fault = times["fault"] = time.time()
            if kill:
                ss.server_on(old).kill9()
            else:
                ss.failover()
            deadline = time.monotonic() + 30
            new = None
            while time.monotonic() < deadline:
                new = ss.current_primary_port()
                if new is not None and new != old:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"sentinels did not agree on a new primary within 30 s (old :{old})")
            t_agree = times["agree"] = time.time()
            return t_agree, {"recover_measures": SENTINEL_RECOVER, "switch_s": round(t_agree - t_fault, 2)}

        def check(run: Run, row: Row, info: dict[str, Any]) -> list[str]:
            t_fault, t_agree = times["fault"], times["agree"]
            outside = other = during = 0
            for a in run.ledger.attempts():
                if a.status == 200 or (isinstance(a.status, int) and a.status < 500):
                    continue
                if a.status != 503:
                    other += 1
                if t_fault - 0.2 <= a.t0 <= t_agree + 10:
                    during += 1
                else:
                    outside += 1
            row.extra.update(failed_attempts_during_switch=during, failed_attempts_outside_switch=outside,
                             non_503_failures=other)
            misses = []
            if outside:
                misses.append(f"{outside} failed attempts outside the switch window")
            if other:
                misses.append(f"{other} failures that were not 503 (500 / timeout / connection)")
            return misses

        return steady_fault(f"sentinel-{'kill-primary' if kill else 'failover'}", opts, inject=inject, limit_s=10.0, observe=20.0, check=check, redis_mode="sentinel")
    return fault


sentinel_failover = _sentinel(False)
sentinel_kill_primary = _sentinel(True)


# --- 4. Redis hung (SIGSTOP) -----------------------------------------------------------------


def next_message(run: Run, user: str, after: float, *, redeliver_pending: bool) -> Any:
    """The user's next message after wall time ``after``: with ``redeliver_pending``, their oldest
    event still being redelivered (redelivered at once: LINE's schedule is its own); else the
    first event they send from then on; failing both within 10 s (or at once when their form has
    run out: the killed event was its last answer), a 「ヘルプ」 sent then. Never a new event that
    could overtake one of theirs still pending."""
    deadline = time.time() + 10.0
    while True:
        with run.ledger.lock:
            mine = [t for t in run.ledger.tracked if t.user == user]
        pending = [t for t in mine if not t.delivery.done.is_set() and t.sent_at < after]
        if pending and redeliver_pending:
            pending[0].delivery.wake.set()
            return pending[0]
        later = [t for t in mine if t.sent_at >= after]
        if later:
            return later[0]
        if not pending and (time.time() > deadline or not still_walking(run, user)):
            token = run.stack.state.issue_reply_token(user)
            d = run.sender.deliver_async([events.text(user, "ヘルプ", token)], label="next", step="help")
            with run.ledger.lock:
                return next(t for t in run.ledger.tracked if t.delivery is d)
        time.sleep(0.01)


def still_walking(run: Run, user: str) -> bool:
    """Whether a walker is still answering the form as ``user`` (it moves on to a new user after the last step)."""
    return run.walkers is not None and any(r.id == user for r in list(run.walkers.current.values()))


def wait_answered(run: Run, wanted: list[Any], timeout: float) -> list[float | None]:
    """When each tracked event was answered (its 200 and its reply/push), polling up to ``timeout``."""
    deadline = time.time() + timeout
    found: list[float | None] = [None] * len(wanted)
    while True:
        deliveries = run.stack.state.all_deliveries()
        replies, pushes = reply_times(deliveries), push_times(deliveries)
        for i, t in enumerate(wanted):
            if found[i] is None:
                found[i] = answered_at(t, replies, pushes)
        if all(v is not None for v in found) or time.time() > deadline:
            return found
        time.sleep(0.1)


def redis_hang(opts: Opts) -> Row:
    row = Row("redis-hang")
    run = None
    try:
        run = start_run("redis-hang", opts, walkers=opts.n(8, 4), probe=False)
        time.sleep(2.0 if opts.quick else 3.0)
        assert run.stack.redis is not None and run.walkers is not None
        run.stack.redis.pause()
        t_pause = time.time()
        try:
            time.sleep(4.0)
        finally:
            run.stack.redis.resume()
        t_resume = time.time()
        users = [r.id for r in run.walkers.current.values()]
        wanted = [next_message(run, u, t_resume, redeliver_pending=True) for u in users]
        found = wait_answered(run, wanted, opts.give_up)
        per_user = [None if v is None else round(v - t_resume, 2) for v in found]
        finish(run, opts, row)
        row.recover_s = None if None in per_user or not per_user else max(per_user)  # type: ignore[type-var]
        row.extra.update(recover_measures="per user: SIGCONT → the first 200 with the reply delivered of the "
                                          "user's next message (their answer 503'd during the hang, redelivered at "
                                          "SIGCONT; else the next one they send)",
                         paused_s=round(t_resume - t_pause, 2), per_user_s=per_user,
                         unanswered_users=sum(1 for v in per_user if v is None))
        misses = common_verdict(row, 2.0)
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row


# --- 5. gunicorn worker SIGKILL mid-request ------------------------------------------------------


def worker_kill(opts: Opts) -> Row:
    row = Row("worker-kill")
    run = None
    kills: list[dict[str, Any]] = []
    misses_setup: list[str] = []
    try:
        run = start_run("worker-kill", opts, walkers=opts.n(4, 3), probe=False)
        time.sleep(2.0)
        state = run.stack.state
        for _ in range(opts.n(2, 1)):
            kill = None
            for _try in range(4):  # the slowed reply may be a deferred event's, in the RQ worker
                before = len(state.delayed)
                state.delayed_event.clear()
                state.fail(REPLY_PATH, 200, 1, delay=3.0)  # < 400: a slow reply that then succeeds
                if not state.delayed_event.wait(15):
                    break
                slowed = state.delayed[before]
                pid = find_pid_by_port(run.stack.gunicorn_workers(), slowed.port) if slowed.port else None
                with run.ledger.lock:
                    victim = next((t.user for t in run.ledger.tracked if t.token == slowed.token), None)
                if pid is None or victim is None:
                    time.sleep(3.5)
                    continue
                os.kill(pid, signal.SIGKILL)
                kill = {"t": time.time(), "pid": pid, "user": victim}
                break
            if kill is None:
                misses_setup.append("could not catch a gunicorn worker in a slowed reply")
                continue
            at = wait_answered(run, [next_message(run, kill["user"], kill["t"], redeliver_pending=False)], 40.0)[0]
            kills.append({"pid": kill["pid"], "next_message_answered_s": None if at is None else round(at - kill["t"], 2)})
            time.sleep(1.0)
        finish(run, opts, row)
        times = [k["next_message_answered_s"] for k in kills]
        row.recover_s = None if not times or None in times else max(times)  # type: ignore[type-var]
        row.extra.update(recover_measures="SIGKILL of the worker waiting on a 3 s reply → the first 200 with "
                                          "the reply delivered of that user's next message (the next answer they send "
                                          "once the killed request is redelivered)",
                         kills=kills, workers_after=len(run.stack.gunicorn_workers()))
        misses = misses_setup + common_verdict(row, 5.0)
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row
