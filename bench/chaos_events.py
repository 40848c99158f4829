"""Faults in what arrives or leaves: out-of-order answers, malformed bodies,
redelivered events, and LINE refusing pushes.
"""
from __future__ import annotations

import threading
import time
from datetime import timezone
from typing import Any

from bench.chaos_faults import Opts, Row, common_verdict, finish, start_run, stop_run
from bench.chaos_load import Ledger, Sender, user_id
from bench.chaos_rig import PUSH_PATH
from bench.chaos_users import STEPS, Registrant, Walkers, account, check_drafts
from simulator import events

# --- 3. ordered answers ---------------------------------------------------------------------------

ORDER_STEPS = STEPS[:8]  # follow, 同意する, code, 氏名, フリガナ, 生年月日, 電話, メール


def ordering(opts: Opts) -> Row:
    """Each user's 8 answers as separate requests 10 ms apart (LINE timestamps 10 ms apart, written
    to the wire in that order; users start 10 ms apart too), against 4 gunicorn workers."""
    n_runs, n_users = opts.n(5, 2), opts.n(50, 12)
    row = Row("ordering")
    run = None
    try:
        run = start_run("ordering", opts, walkers=0, probe=False, workers=4)
        stack = run.stack
        runs: list[dict[str, Any]] = []
        totals = {"sent": 0, "answered": 0, "lost": 0, "duplicated": 0, "wrong_fields": 0, "users": 0,
                  "users_not_applied": 0, "users_broken": 0}
        for k in range(n_runs):
            ledger = Ledger()
            sender = Sender(stack.url, stack.secret, ledger, give_up_s=opts.give_up)
            sender.min_gap_s = gap = opts.order_gap_ms / 1000
            regs = [Registrant(f"ord:{k}:{u}", u, stack.code, stack.institution_id) for u in range(n_users)]
            started = time.time()
            base = started + 0.3
            for u, r in enumerate(regs):
                items = []
                for i, step in enumerate(ORDER_STEPS):
                    at = base + 0.01 * u + max(gap, 0.001) * i  # LINE's timestamps differ by ≥ 1 ms
                    items.append((at, r.event(step, stack.state.issue_reply_token(r.id), at), step))
                sender.deliver_in_order(items)
            drained = ledger.wait(opts.give_up + 30)
            settled = stack.settle(opts.settle)
            acc = account(stack, ledger.tracked)
            drafts = check_drafts(stack, regs, ledger.tracked)
            sender.halt()
            one = {"users": n_users, "sent": acc["sent"], "answered": acc["answered"], "lost": acc["lost"],
                   "duplicated": acc["duplicated"], "wrong_fields": drafts["wrong_fields"],
                   "users_not_applied": drafts["users_not_applied"], "users_broken": drafts["users_broken"],
                   "pct_not_applied": round(100 * drafts["users_not_applied"] / n_users, 1),
                   "statuses": ledger.statuses(), "s": round(time.time() - started, 1)}
            one["send_gap_ms"] = send_gaps(ledger)
            if drafts["wrong_samples"]:
                one["wrong_samples"] = drafts["wrong_samples"][:3]
            if not drained or not settled:
                one["unfinished"] = {"redelivery": not drained, "queues": not settled}
            runs.append(one)
            for key in totals:
                totals[key] += one[key]
            print(f"  ordering run {k + 1}/{n_runs}: " + ", ".join(f"{key}={one[key]}" for key in
                  ("sent", "answered", "lost", "duplicated", "wrong_fields", "users_not_applied", "s")), flush=True)
        row.sent, row.answered, row.lost, row.duplicated = (totals["sent"], totals["answered"], totals["lost"],
                                                            totals["duplicated"])
        pct = round(100 * totals["users_not_applied"] / max(1, totals["users"]), 1)
        row.extra.update(runs=runs, wrong_fields=totals["wrong_fields"], users=totals["users"],
                         gap_ms=opts.order_gap_ms,
                         users_not_applied=totals["users_not_applied"], pct_not_applied=pct,
                         recover_measures="none (no fault to remove); see per-run s")
        misses = []
        if totals["wrong_fields"]:
            misses.append(f"{totals['wrong_fields']} answers in a wrong field")
        if pct > 10:
            misses.append(f"{pct}% of users with answers not applied (> 10 %)")
        if row.duplicated:
            misses.append(f"{row.duplicated} duplicated")
        if row.lost:
            row.extra["lost_events_note"] = "lost events are counted in users_not_applied"
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row


def send_gaps(ledger: Ledger) -> dict[str, float]:
    """Min and median ms between a user's consecutive first attempts (what the bot really got)."""
    starts: dict[str, list[float]] = {}
    for t in ledger.tracked:
        if t.delivery.attempts:
            starts.setdefault(t.user, []).append(t.delivery.attempts[0].t0)
    gaps = sorted(b - a for ts in starts.values() for a, b in zip(sorted(ts), sorted(ts)[1:]))
    if not gaps:
        return {}
    return {"min": round(gaps[0] * 1000, 1), "median": round(gaps[len(gaps) // 2] * 1000, 1)}


# --- 6. malformed signed bodies ----------------------------------------------------------------------


def _set(path: tuple[str, ...], value: Any) -> Any:
    def mutate(e: dict[str, Any]) -> Any:
        target = e
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return e
    return mutate


MALFORMED = {
    "timestamp-x": _set(("timestamp",), "x"),
    "timestamp-null": _set(("timestamp",), None),
    "timestamp-2^63": _set(("timestamp",), 2 ** 63),
    "userId-number": _set(("source", "userId"), 12345),
    "webhookEventId-object": _set(("webhookEventId",), {"id": "01J"}),
    "message-string": _set(("message",), "こんにちは"),
    "replyToken-number": _set(("replyToken",), 12345),
    "event-null": lambda e: None,
    "source-string": _set(("source",), "user"),
}
BRACKETS = '{"events": ' + "[" * 5000


def malformed(opts: Opts) -> Row:
    row = Row("malformed")
    run = None
    try:
        run = start_run("malformed", opts, walkers=0, probe=False)
        state = run.stack.state
        batches: dict[str, Any] = {}
        for name, mutate in MALFORMED.items():
            bad_user, good_user = user_id(f"mal:{name}:bad"), user_id(f"mal:{name}:good")
            bad = mutate(events.text(bad_user, "こんにちは", state.issue_reply_token(bad_user)))
            good = events.follow(good_user, state.issue_reply_token(good_user))
            batches[name] = run.sender.deliver_async([bad, good], label=f"malformed:{name}", track=[good])
        batches["brackets-5000"] = run.sender.deliver_async([], raw=BRACKETS, label="malformed:brackets")
        good_user = user_id("mal:brackets:good")
        good = events.follow(good_user, state.issue_reply_token(good_user))
        run.sender.deliver_async([good], at=time.time() + 0.2, label="malformed:after-brackets", track=[good])
        finish(run, opts, row)
        per = {name: [a.status for a in d.attempts] for name, d in batches.items()}
        bad = {name: s for name, s in per.items() if any(not (isinstance(x, int) and x < 500) for x in s)}
        n_5xx = sum(1 for s in per.values() for x in s if not (isinstance(x, int) and x < 500))
        row.extra.update(per_body_statuses=per, five_xx=n_5xx, recover_measures="none (no fault to remove)")
        misses = [f"{n_5xx} × 5xx/no answer ({', '.join(sorted(bad))})"] if n_5xx else []
        misses += common_verdict(row, None)
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row


# --- 8. redelivery × 3 -------------------------------------------------------------------------------


def redelivery_x3(opts: Opts) -> Row:
    """Every event delivered 3 times (same id; copies 2 and 3 flagged isRedelivery), half the
    users all three at once, half one after the other."""
    row = Row("redelivery-x3")
    run = None
    try:
        run = start_run("redelivery-x3", opts, walkers=0, probe=False)
        stack = run.stack
        n = opts.n(6, 2)
        regs = [Registrant(f"rx3:{i}", i, stack.code, stack.institution_id) for i in range(n)]

        def walk(r: Registrant, concurrent: bool) -> None:
            for step in STEPS[:6]:
                e = stack.state.issue_reply_token(r.id)
                first = r.event(step, e)
                copies = [first, events.redelivery(first), events.redelivery(first)]
                if concurrent:
                    ds = [run.sender.deliver_async([c], label=f"x3:{step}", step=step, track=(i == 0))
                          for i, c in enumerate(copies)]
                    for d in ds:
                        d.done.wait(opts.give_up + 15)
                else:
                    for i, c in enumerate(copies):
                        run.sender.deliver([c], label=f"x3:{step}", step=step, track=(i == 0))

        threads = [threading.Thread(target=walk, args=(r, i % 2 == 0), daemon=True) for i, r in enumerate(regs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(opts.give_up * 3)
        run.walkers = Walkers(stack, run.sender, 0, "rx3")  # only for the draft check below
        run.walkers.registrants = regs
        finish(run, opts, row)
        row.extra["recover_measures"] = "none (no fault to remove)"
        misses = common_verdict(row, None)
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row


# --- 8. LINE 5xx / 429 / timeouts on pushes -------------------------------------------------------


def push_failures(opts: Opts) -> Row:
    """Answers go out as outbox pushes (the events carry reply tokens LINE no longer accepts — a
    late redelivery's — so each reply is refused and becomes a push); LINE then answers the
    push endpoint 500 ×3, 429 (rate limit, not the monthly quota) ×3, and twice delivers but
    answers only after 6 s (the bot's timeout is 5 s)."""
    row = Row("push-failures")
    run = None
    try:
        run = start_run("push-failures", opts, walkers=0, probe=False)
        stack, state = run.stack, run.stack.state
        injected = [(500, 3, None, 0.0), (429, 3, {"message": "Too Many Requests"}, 0.0), (200, 2, None, 6.0)]
        for status, count, body, delay in injected:
            state.fail(PUSH_PATH, status, count, body, delay)
        total_injected = sum(c for _, c, _, _ in injected)
        run.walkers = Walkers(stack, run.sender, opts.n(6, 3), "push", steps=STEPS[:4], think=0.05,
                              continuous=False, tokens=False).start()
        for t in run.walkers.threads:
            t.join(opts.give_up * 4)
        with run.ledger.lock:
            expected = len(run.ledger.tracked)
        deadline = time.monotonic() + (60 if opts.quick else 90)
        with stack.db() as db:
            while time.monotonic() < deadline:
                rows = db.outbox()
                if len(rows) >= expected and all(r.status != "pending" for r in rows):
                    break
                time.sleep(0.5)
        finish(run, opts, row)
        with stack.db() as db:
            rows = db.outbox()
        pushes = [d for d in state.all_deliveries() if d.get("via") == "push"]
        per_key: dict[str, list[float]] = {}
        for d in pushes:
            per_key.setdefault(d.get("retryKey") or "", []).append(d["at"])
        never = [r.id for r in rows if not per_key.get(r.uuid)]
        twice = [r.id for r in rows if len(per_key.get(r.uuid, [])) > 1]
        failed = [r.id for r in rows if r.status == "failed"]
        delays = [min(per_key[r.uuid]) - r.created_at.replace(tzinfo=timezone.utc).timestamp()
                  for r in rows if per_key.get(r.uuid)]
        row.recover_s = round(max(delays), 2) if delays else None
        row.extra.update(outbox_rows=len(rows), pushes_delivered=len(pushes), never_delivered=len(never),
                         delivered_twice=len(twice), failed_rows=len(failed),
                         attempts=sorted(r.attempts for r in rows)[-5:],
                         injected=total_injected, injected_consumed=total_injected - state.pending_failures(),
                         recover_measures="max over outbox rows: row committed → its push reached the platform")
        misses = common_verdict(row, None)
        if never:
            misses.append(f"{len(never)} pushes never delivered")
        if twice:
            misses.append(f"{len(twice)} pushes delivered twice")
        if failed:
            misses.append(f"{len(failed)} outbox rows marked failed")
        if len(rows) < expected:
            misses.append(f"{expected - len(rows)} answers without an outbox push")
        row.ok = not misses
        row.notes = "; ".join(misses) or "ok"
    finally:
        stop_run(run)
    return row
