"""The Redis session store against a real Redis: one JSON key per user."""
from __future__ import annotations

import json

import pytest
import redis

from storage.sessions import SCHEMA_VERSION, SESSION_TTL_SECONDS, KeyBuilder, RedisSessionStore, Session

USER = "U" + "5" * 32


@pytest.fixture
def store(redis_url):
    client = redis.Redis.from_url(redis_url)
    keys = KeyBuilder(prefix="t:")
    client.delete(keys.session(USER))
    yield RedisSessionStore(client, keys)
    client.delete(keys.session(USER))


def test_round_trip_keeps_every_field(store):
    s = Session(USER, flow="profile", state="name", v=7, data={"x": "山田"}, retries={"name": 2}, stack=["terms"])
    store.save(s)
    back = store.load(USER)
    assert (back.flow, back.state, back.v, back.data, back.retries, back.stack, back.schema) == (
        "profile", "name", 7, {"x": "山田"}, {"name": 2}, ["terms"], SCHEMA_VERSION)


def test_one_key_per_user_with_a_sliding_ttl(store):
    store.save(Session(USER, flow="profile", state="terms"))
    key = store.keys.session(USER)
    assert store.client.keys("t:*") == [key.encode()]
    store.client.expire(key, 10)
    store.save(Session(USER, flow="profile", state="name"))
    assert store.client.ttl(key) > SESSION_TTL_SECONDS - 5


@pytest.mark.parametrize("raw", ["{not json", "[]", json.dumps({"flow": "profile", "state": "x", "schema": 0})])
def test_corrupt_or_foreign_documents_count_as_lost(store, raw):
    store.client.set(store.keys.session(USER), raw)
    assert store.load(USER) is None


def test_delete(store):
    store.save(Session(USER))
    store.delete(USER)
    assert store.load(USER) is None


def test_session_is_a_plain_object_transitions_can_decorate():
    s = Session(USER)
    s.some_attribute = 1  # no __slots__
    assert not hasattr(Session, "__slots__")
