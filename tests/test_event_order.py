"""One user's events are applied in LINE's order; a lock is held only by a live request, for as long as its work.

The gate is tested against a real Redis (and, for the hang, a redis-server of
our own that we pause); the webhook rules through signed requests like LINE's.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from bench.servers import RedisServer, ServerUnavailable
from simulator import events
from storage.redis_conn import webhook_client
from storage.sessions import KeyBuilder
from storage.user_gate import LOCK_LEASE, UserGate
from tests.actors import draft_of, say_at, step_of
from tests.test_profile_steps import walk_to

USER = "U" + "5" * 32  # the profile tests' user (walk_to, draft_of)


@pytest.fixture
def gate(redis_url: str) -> UserGate:
    keys = KeyBuilder(prefix=f"t{uuid.uuid4().hex[:8]}:")
    return UserGate(webhook_client(redis_url), keys, dedupe_ttl=60, lock_timeout=LOCK_LEASE, lock_sleep=0.002)


def take_turn_in_thread(gate: UserGate, user: str, event_id: str, score: float, order: list[str]) -> threading.Thread:
    def run() -> None:
        entry = gate.enter(event_id, user, score, wait=3)
        if entry.status == "queued":
            assert gate.wait_turn(user, entry, 3)
        order.append(event_id)
        assert entry.token is not None
        gate.leave(user, entry.token, None, event_id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def queued_behind(gate: UserGate, user: str, n: int) -> None:
    """Wait until ``n`` events wait in the user's queue (what a fixed sleep would only assume)."""
    deadline = time.monotonic() + 2
    while gate.client.zcard(gate.keys.queue(user)) < n:
        assert time.monotonic() < deadline, "the event never queued"
        time.sleep(0.0005)


# --- order ---------------------------------------------------------------------------------


def test_an_idle_user_takes_the_lock_at_once(gate):
    started = time.perf_counter()
    entry = gate.enter("e1", "U1", 1000.0, wait=1)
    assert entry.status == "entered" and time.perf_counter() - started < 0.1
    assert gate.client.get(gate.keys.lock("U1")).decode() == entry.token


def test_waiters_take_the_lock_in_timestamp_order_not_arrival_order(gate):
    first = gate.enter("e0", "U1", 1000.0, wait=1)  # an event in flight
    order: list[str] = []
    threads = []
    for event_id, score in (("e3", 4000.0), ("e1", 2000.0), ("e2", 3000.0)):  # arrive out of order
        threads.append(take_turn_in_thread(gate, "U1", event_id, score, order))
        time.sleep(0.01)
    time.sleep(0.05)
    gate.leave("U1", first.token, None, "e0")
    for thread in threads:
        thread.join(5)
    assert order == ["e1", "e2", "e3"]


def test_a_straggler_a_few_ms_late_still_goes_first(gate):
    """The head of the queue waits the settle time after it queued: an earlier event that
    reaches us a few ms later is still applied first."""
    first = gate.enter("e0", "U1", 1000.0, wait=1)
    order: list[str] = []
    later = take_turn_in_thread(gate, "U1", "late-sent", 3000.0, order)
    queued_behind(gate, "U1", 1)  # its thread's first connection may take a moment
    gate.leave("U1", first.token, None, "e0")  # the lock is free before the straggler arrives
    time.sleep(0.005)
    earlier = take_turn_in_thread(gate, "U1", "early-sent", 2000.0, order)
    later.join(5)
    earlier.join(5)
    assert order == ["early-sent", "late-sent"]


def test_a_waiter_that_gave_up_does_not_block_the_queue(gate):
    first = gate.enter("e0", "U1", 1000.0, wait=1)
    quitter = gate.enter("e1", "U1", 2000.0, wait=0.05)
    assert quitter.status == "queued" and not gate.wait_turn("U1", quitter, 0.05)
    gate.leave("U1", first.token, None, "e0")
    time.sleep(0.6)  # past the quitter's hold
    entry = gate.enter("e2", "U1", 3000.0, wait=1)
    assert entry.status == "entered" or gate.wait_turn("U1", entry, 1)


# --- live requests only, leases ---------------------------------------------------------------


@pytest.fixture
def own_redis():
    try:
        server = RedisServer().start()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.remove()


def test_a_script_run_after_its_request_gave_up_takes_no_lock(own_redis):
    """Redis hung (SIGSTOP) while a request waited: the request answered 503; when Redis
    resumes, its queued script must not take the user's lock (it used to hold it ~28 s)."""
    keys = KeyBuilder()
    gate = UserGate(webhook_client(own_redis.url), keys, dedupe_ttl=60)
    gate.enter("warm", "U9", 1.0, wait=1)  # measures the clock offset; then free the user
    gate.client.delete(keys.lock("U9"))
    own_redis.pause()
    try:
        with pytest.raises(redis.RedisError):
            gate.enter("during-hang", "U9", 2.0, wait=1.5)
        time.sleep(1.0)  # the hang outlives the request's deadline
    finally:
        own_redis.resume()
    resumed = time.monotonic()
    probe = own_redis.client()
    assert probe.get(keys.lock("U9")) is None
    assert probe.get(keys.event("during-hang")) is None, "LINE's redelivery of that event must run"
    entry = gate.enter("next", "U9", 3.0, wait=1.5)
    assert entry.status == "entered" and time.monotonic() - resumed < 2


HOLD_AND_DIE = """
import sys, time
from storage.redis_conn import webhook_client
from storage.sessions import KeyBuilder
from storage.user_gate import UserGate
gate = UserGate(webhook_client(sys.argv[1]), KeyBuilder(prefix=sys.argv[2]), dedupe_ttl=60)
entry = gate.enter("held", "U7", 1.0, wait=1)
print(entry.status, flush=True)
time.sleep(60)
"""


def test_the_lock_of_a_killed_worker_frees_within_the_lease(gate, redis_url):
    """A gunicorn worker SIGKILLed mid-request: the user's next message waited ~19 s; now the lease.
    The event it was running is not a duplicate for LINE's redelivery: its marker expired with the lease."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_DIE, redis_url, gate.keys.prefix],
                            stdout=subprocess.PIPE, text=True, cwd=str(__import__("bot").ROOT))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "entered"
        time.sleep(LOCK_LEASE + 0.5)  # its keeper renewed the lease meanwhile
        assert gate.client.exists(gate.keys.lock("U7")), "a live holder keeps its lock past the lease"
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        redelivery = gate.enter("held", "U7", 1.0, wait=LOCK_LEASE + 1)  # LINE redelivers the lost event
        assert redelivery.status == "queued", "its marker lives while its holder might still be working"
        assert gate.wait_turn("U7", redelivery, LOCK_LEASE + 1)
        assert time.monotonic() - killed <= LOCK_LEASE + 0.5
    finally:
        proc.kill()
        proc.wait()


def test_a_slow_step_keeps_its_lock_while_it_runs(gate):
    entry = gate.enter("slow", "U1", 1.0, wait=1)
    time.sleep(LOCK_LEASE + 1.2)
    assert gate.client.get(gate.keys.lock("U1")).decode() == entry.token
    assert gate.leave("U1", entry.token, '{"v": 1}', "slow")
    assert gate.keeper.held() == 0


def test_a_leave_after_the_lock_was_lost_leaves_the_newer_session_alone(gate):
    entry = gate.enter("old", "U1", 1.0, wait=1)
    gate.keeper.drop(gate.keys.lock("U1"), entry.token)
    gate.client.delete(gate.keys.lock("U1"))  # the lease ran out while Redis stalled
    newer = gate.enter("new", "U1", 2.0, wait=1)
    assert gate.leave("U1", newer.token, '{"v": "newer"}', "new")
    assert not gate.leave("U1", entry.token, '{"v": "older"}', "old")
    assert gate.client.get(gate.keys.session("U1")) == b'{"v": "newer"}'
    assert gate.client.ttl(gate.keys.event("old")) > 30, "the event is done either way"


# --- through the webhook ---------------------------------------------------------------------


def test_answers_racing_each_other_are_applied_in_line_order(bot_app):
    """Two answers sent 10 ms apart reach the bot in the wrong order while an event is in
    flight: the 氏名 still lands in 氏名 and the フリガナ in フリガナ."""
    walk_to(bot_app, "name")
    lock = bot_app.rt.keys.lock(USER)
    bot_app.rt.redis.set(lock, "in-flight", px=2000)  # an earlier event still running
    sent = int(time.time() * 1000)
    name = bot_app.event(USER, "text", text="山田 太郎")
    kana = bot_app.event(USER, "text", text="やまだ たろう")
    name["timestamp"], kana["timestamp"] = sent, sent + 10
    results: list[int] = []
    second = threading.Thread(target=lambda: results.append(bot_app.post([kana]).status_code))
    second.start()  # the later answer arrives first
    time.sleep(0.005)
    first = threading.Thread(target=lambda: results.append(bot_app.post([name]).status_code))
    first.start()
    time.sleep(0.05)
    bot_app.rt.redis.delete(lock)
    second.join(10)
    first.join(10)
    assert results == [200, 200]
    draft = draft_of(USER)
    assert (draft["family_name"], draft["given_name"]) == ("山田", "太郎")
    assert (draft["kana_family"], draft["kana_given"]) == ("ヤマダ", "タロウ")
    assert step_of(bot_app, USER) == "birthdate"


def test_an_answer_arriving_after_a_later_one_is_never_taken_for_the_current_question(bot_app):
    walk_to(bot_app, "name")
    sent = int(time.time() * 1000)
    say_at(bot_app, USER, sent + 10, text="山田 太郎")  # the later message got here first
    assert step_of(bot_app, USER) == "kana"
    texts = say_at(bot_app, USER, sent, text="やまだ たろう")  # sent before it, delivered after
    assert "遅れて届いた" in texts[0] and "やまだ たろう" in texts[0]
    assert "フリガナ" in texts[-1], "the current question is asked again"
    assert step_of(bot_app, USER) == "kana" and "kana_family" not in draft_of(USER)
    bot_app.text(USER, "やまだ たろう")
    assert step_of(bot_app, USER) == "birthdate" and draft_of(USER)["kana_family"] == "ヤマダ"


def test_a_late_redelivery_is_recognised_too(bot_app):
    walk_to(bot_app, "name")
    sent = int(time.time() * 1000)
    early = bot_app.event(USER, "text", text="鈴木 一郎")
    early["timestamp"] = sent
    say_at(bot_app, USER, sent + 10, text="山田 太郎")
    before = bot_app._seq(USER)
    assert bot_app.post([events.redelivery(early)]).status_code == 200  # its first delivery had failed
    assert "遅れて届いた" in bot_app.texts_since(USER, before)[0]
    assert draft_of(USER)["family_name"] == "山田"


def test_a_card_button_arriving_late_is_judged_by_its_own_target(bot_app):
    walk_to(bot_app, "name")
    sent = int(time.time() * 1000)
    say_at(bot_app, USER, sent + 10, text="山田 太郎")
    texts = say_at(bot_app, USER, sent, "postback", data="a=detail&id=999999")
    assert texts == ["申請が見つかりませんでした。"]
