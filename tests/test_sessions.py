"""Sessions against a real Redis: one JSON key per user, read and written only through the user gate."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from storage.sessions import SCHEMA_VERSION, SESSION_TTL_SECONDS, KeyBuilder, Session
from storage.user_gate import UserGate

USER = "U" + "5" * 32


@pytest.fixture
def gate(redis_url):
    client = redis.Redis.from_url(redis_url)
    keys = KeyBuilder(prefix="t:")
    client.delete(keys.session(USER), keys.lock(USER), keys.queue(USER))
    yield UserGate(client, keys, dedupe_ttl=60)
    for key in client.keys("t:*"):
        client.delete(key)


def save(gate: UserGate, session: Session | None) -> None:
    """As the webhook does: enter for an event, then leave with the session (None deletes it)."""
    event_id = uuid.uuid4().hex
    entry = gate.enter(event_id, USER, score=time.time() * 1e6, wait=1.0)
    assert entry.status == "entered" and entry.token
    assert gate.leave(USER, entry.token, session.to_json() if session else None, event_id)


def test_round_trip_keeps_every_field(gate):
    save(gate, Session(USER, flow="profile", state="name", v=7, data={"x": "山田"}, retries={"name": 2},
                       stack=["terms"]))
    back = gate.read_session(USER)
    assert (back.flow, back.state, back.v, back.data, back.retries, back.stack, back.schema) == (
        "profile", "name", 7, {"x": "山田"}, {"name": 2}, ["terms"], SCHEMA_VERSION)


def test_one_key_per_user_with_a_sliding_ttl(gate):
    save(gate, Session(USER, flow="profile", state="terms"))
    key = gate.keys.session(USER)
    assert gate.client.exists(key)
    gate.client.expire(key, 10)
    save(gate, Session(USER, flow="profile", state="name"))
    assert gate.client.ttl(key) > SESSION_TTL_SECONDS - 5


@pytest.mark.parametrize("raw", ["{not json", "[]", json.dumps({"flow": "profile", "state": "x", "schema": 0})])
def test_corrupt_or_foreign_documents_count_as_lost(gate, raw):
    gate.client.set(gate.keys.session(USER), raw)
    assert gate.read_session(USER) is None


def test_leaving_without_a_session_deletes_it_and_so_does_delete_session(gate):
    save(gate, Session(USER))
    save(gate, None)
    assert gate.read_session(USER) is None
    save(gate, Session(USER))
    gate.delete_session(USER)
    assert gate.read_session(USER) is None


def test_session_is_a_plain_object_transitions_can_decorate():
    s = Session(USER)
    s.some_attribute = 1  # no __slots__
    assert not hasattr(Session, "__slots__")
