"""The gate's own connection per thread (``UserGate._run``): every event's two scripts skip the
pool, yet a thread that ends gives its connection back, a connection Redis closed while idle is
never sent on, and a script Redis forgot is loaded again."""
from __future__ import annotations

import gc
import threading
import uuid

from storage.redis_conn import webhook_client
from storage.sessions import KeyBuilder
from storage.user_gate import UserGate


def gate_for(redis_url: str) -> UserGate:
    return UserGate(webhook_client(redis_url), KeyBuilder(prefix=f"t{uuid.uuid4().hex[:8]}:"), dedupe_ttl=60)


def one_event(gate: UserGate, user: str = "U1") -> None:
    entry = gate.enter(uuid.uuid4().hex, user, 1.0, 1.0)
    assert entry.status == "entered" and entry.token
    assert gate.leave(user, entry.token, '{"flow": null}', uuid.uuid4().hex)


def test_events_in_one_thread_use_one_connection_and_threads_that_end_give_theirs_back(redis_url):
    gate = gate_for(redis_url)
    pool = gate.client.connection_pool
    for _ in range(20):
        one_event(gate)
    assert len(pool._in_use_connections) == 1  # this thread's, kept between events
    for _ in range(30):  # a server that starts a thread per request
        thread = threading.Thread(target=one_event, args=(gate, "U2"))
        thread.start()
        thread.join()
    gc.collect()
    assert len(pool._in_use_connections) == 1
    assert len(pool._available_connections) <= 2  # the ended threads' connections, reused in turn


def test_a_connection_redis_closed_while_idle_is_not_sent_on(redis_url):
    gate = gate_for(redis_url)
    one_event(gate)
    pinned = gate._pins.pin
    assert pinned is not None
    pinned.conn.send_command("CLIENT", "ID")
    own_id = pinned.conn.read_response()
    assert webhook_client(redis_url).client_kill_filter(_id=own_id) == 1  # as a Redis restart would
    one_event(gate)  # no error: the closed connection was noticed before use, and replaced


def test_a_script_redis_forgot_is_loaded_again(redis_url):
    gate = gate_for(redis_url)
    one_event(gate)
    gate._enter.sha = "0" * 40  # as after a failover to a replica without it, or SCRIPT FLUSH
    one_event(gate)
    assert gate._enter.sha != "0" * 40
