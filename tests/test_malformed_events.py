"""No 500 for any signed body: a malformed event is skipped, the rest of the batch runs.

Every test drives the real bot with signed webhooks, except the few that pin the
schema itself (``handlers.event_schema``) to LINE's OpenAPI file, using the
simulator's jsonschema contract checker as an independent oracle.
"""
from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers import event_schema, logs, router
from simulator import events
from simulator.contract import WEBHOOK_SPEC, schema_validator
from storage.models import LineUser, ProcessedEvent
from tests.test_webhook_edge import signed_post

ALICE = "U" + "a" * 32  # sends the malformed events
CAROL = "U" + "c" * 32
GREETING = "友だち追加ありがとうございます"
APOLOGY = "エラーが発生しました"
counter = itertools.count()


# --- helpers ----------------------------------------------------------------------------------


class Raw:
    """A JSON token written into the body as is (``1e400``, ``NaN``, a 5,000-digit integer)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:24]!r})"


_SURROGATE = re.compile("[\ud800-\udfff]")


def to_body(event_list: list[Any]) -> str:
    """LINE's compact body, except that raw tokens go in verbatim and lone
    surrogates are written as ``\\ud800`` escapes (legal JSON text, not UTF-8)."""
    raws: list[str] = []

    def placeholder(value: Any) -> str:
        if not isinstance(value, Raw):
            raise TypeError(type(value).__name__)
        raws.append(value.text)
        return f"@@raw{len(raws) - 1}@@"

    text = json.dumps({"destination": events.DEFAULT_DESTINATION, "events": event_list},
                      ensure_ascii=False, separators=(",", ":"), default=placeholder)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', raw, 1)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def as_parsed(body: str) -> list[Any]:
    """The events as a JSON parser sees them (huge integer literals as infinity)."""
    return json.loads(body, parse_int=lambda s: int(s) if len(s) < 4000 else float("inf"))["events"]


def new_user() -> str:
    return "U" + format(0xB0B00000 + next(counter), "032x")


def event_keys(bot_app) -> set[str]:
    pattern = bot_app.rt.keys.event("*")
    return {k.decode() if isinstance(k, bytes) else k for k in bot_app.rt.redis.scan_iter(match=pattern)}


def processed_ids() -> set[str]:
    return {row.webhook_event_id for row in ProcessedEvent.select()}


def log_entries(bot_app, name: str) -> list[dict[str, Any]]:
    return [entry for entry in map(json.loads, bot_app.log_lines()) if entry.get("event") == name]


def set_at(event: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return event


def value_at(event: Any, where: str) -> Any:
    """The value at a violation's property path (``message.mention.mentionees[0].type``)."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        event = event[int(part[1:-1])] if part.startswith("[") else event[part]
    return event


def spec_refuses(event: Any, schema: str = "Event") -> bool:
    """LINE's schema refuses the event. A type name it does not know yet is forward
    compatible (LINE adds types; the bot accepts them and the router ignores them), so
    such an object is held to its base schema only (the contract's ``<Name>__base``)."""
    for violation in schema_validator(schema, WEBHOOK_SPEC).violations(event):
        unknown = re.match(r"unknown (\w+) type ", violation.message)
        if not (unknown and isinstance(value_at(event, violation.property), str)):
            return True
        parent = violation.property.rpartition(".")[0]
        if spec_refuses(value_at(event, parent) if parent else event, unknown.group(1) + "__base"):
            return True
    return False


# --- 1. each named malformation, next to a valid event of another user ------------------------

NAMED = {
    # name: (event kind, path, value, where the log says the problem is)
    "timestamp is a string": ("follow", ("timestamp",), "x", "$.timestamp"),
    "timestamp is null": ("follow", ("timestamp",), None, "$.timestamp"),
    "timestamp is 2**63": ("follow", ("timestamp",), 2**63, "$.timestamp"),
    "timestamp has 5,000 digits": ("text", ("timestamp",), Raw("9" * 5000), "$.timestamp"),
    "userId is a number": ("text", ("source", "userId"), 12345, "$.source.userId"),
    "userId is an object": ("text", ("source", "userId"), {"id": ALICE}, "$.source.userId"),
    "userId is a lone surrogate": ("text", ("source", "userId"), "U\ud800", "$.source.userId"),
    "userId ends in a newline": ("follow", ("source", "userId"), ALICE + "\n", "$.source.userId"),
    "webhookEventId is an object": ("follow", ("webhookEventId",), {"id": "01J0000000000000000000000"}, "$.webhookEventId"),
    "message is a string": ("text", ("message",), "秘密のメッセージ", "$.message"),
    "postback is a string": ("postback", ("postback",), "秘密のデータ", "$.postback"),
    "replyToken is a number": ("follow", ("replyToken",), 12345, "$.replyToken"),
    "replyToken is a list": ("text", ("replyToken",), ["秘密のトークン"], "$.replyToken"),
    "text is a number": ("text", ("message", "text"), 42, "$.message.text"),
    "params value is an object": ("postback", ("postback", "params", "date"), {"y": 1980}, "$.postback.params.*"),
    "latitude is 1e400": ("location", ("message", "latitude"), Raw("1e400"), "$.message.latitude"),
    "latitude is NaN": ("location", ("message", "latitude"), Raw("NaN"), "$.message.latitude"),
    "imageSet is a list": ("image", ("message", "imageSet"), [1, 2], "$.message.imageSet"),
    "mode is unknown": ("text", ("mode",), "paused", "$.mode"),
}


def alice_event(bot_app, kind: str) -> dict[str, Any]:
    fields = {"text": {"text": "登録"}, "postback": {"data": "a=x", "params": {"date": "1980-04-01"}},
              "location": {"latitude": 35.68, "longitude": 139.76, "address": "東京都千代田区"},
              "image": {"messageId": "999999", "imageSet": {"id": "set", "index": 1, "total": 2}}}.get(kind, {})
    return bot_app.event(ALICE, kind, **fields)


@pytest.mark.parametrize("name", NAMED)
def test_malformed_event_is_skipped_and_the_rest_of_the_batch_runs(bot_app, name):
    kind, path, value, where = NAMED[name]
    bad = set_at(alice_event(bot_app, kind), path, value)
    bob = new_user()
    good = bot_app.event(bob, "follow")
    response = signed_post(bot_app.url, to_body([bad, good]))

    assert response.status_code == 200
    assert any(GREETING in t for t in bot_app.texts_since(bob, 0))
    assert event_keys(bot_app) == {bot_app.rt.keys.event(good["webhookEventId"])}  # no marker for the bad one
    assert processed_ids() == {good["webhookEventId"]}
    assert bot_app.line.deliveries_for(ALICE) == []
    assert not LineUser.select().where(LineUser.line_user_id == ALICE).exists()

    [entry] = log_entries(bot_app, "webhook.malformed_event")
    assert entry["level"] == "warning" and entry["index"] == 0
    assert entry["reason"].startswith(where + ":"), entry["reason"]
    sender = bad["source"].get("userId")
    expected_user = logs.pseudonym(sender) if isinstance(sender, str) and "\ud800" not in sender else None
    assert entry["user"] == expected_user
    assert "秘密" not in json.dumps(entry, ensure_ascii=False)  # never the raw values


def test_events_that_are_not_objects_are_skipped_one_by_one(bot_app):
    bob = new_user()
    good = bot_app.event(bob, "follow")
    response = signed_post(bot_app.url, to_body([42, "follow", None, [good], good]))
    assert response.status_code == 200
    assert any(GREETING in t for t in bot_app.texts_since(bob, 0))
    assert processed_ids() == {good["webhookEventId"]}
    reasons = [e["reason"] for e in log_entries(bot_app, "webhook.malformed_event")]
    assert reasons == ["$: not an object"] * 4


# --- 2. a body nested too deep to parse --------------------------------------------------------


@pytest.mark.parametrize("body", [
    '{"events":' + "[" * 5000,
    '{"events":' + "[" * 5000 + "]" * 5000 + "}",
    '{"destination":"x","events":[{"type":"message","x":' + "{\"a\":" * 5000 + "1" + "}" * 5000 + "}]}",
])
def test_body_nested_too_deep_is_400_and_the_bot_carries_on(bot_app, body):
    assert signed_post(bot_app.url, body).status_code == 400
    assert bot_app.say(new_user(), "follow")  # the server thread survived


# --- 3. what LINE may add is still accepted -----------------------------------------------------


def test_unknown_event_type_and_extra_fields_are_accepted(bot_app):
    bob = new_user()
    future = {"type": "somethingNew", "webhookEventId": "01J8Z0F8Y7Q6K5M4N3P2R1S0T9", "mode": "active",
              "timestamp": int(time.time() * 1000), "deliveryContext": {"isRedelivery": False, "newFlag": 1},
              "source": {"type": "user", "userId": ALICE, "newId": [1]}, "somethingNew": {"x": [None]}}
    text = bot_app.event(bob, "text", text="ヘルプ")
    text["newTopLevel"] = {"nested": [1, "two"]}
    text["message"]["newField"] = None
    text["source"]["newField"] = 3.5
    text["deliveryContext"]["newField"] = "x"
    assert signed_post(bot_app.url, to_body([future, text])).status_code == 200
    assert {future["webhookEventId"], text["webhookEventId"]} <= processed_ids()  # both reached accept()
    replies = bot_app.texts_since(bob, 0)
    assert replies and not any(APOLOGY in t for t in replies)
    assert log_entries(bot_app, "webhook.malformed_event") == []


def test_a_timestamp_no_datetime_can_hold_is_read_as_unknown(bot_app):
    bob = new_user()
    event = bot_app.event(bob, "follow")
    event["timestamp"] = 2**62  # a valid int64, year 146 million
    assert signed_post(bot_app.url, to_body([event])).status_code == 200
    replies = bot_app.texts_since(bob, 0)
    assert any(GREETING in t for t in replies) and not any(APOLOGY in t for t in replies)
    assert router.to_input(event).timestamp_ms == 0


@pytest.mark.parametrize("lat, lng", [(1e300, 139.7), (35.6, -181), (90.5, 0), (-1e-300, 1e308), (-90, 180)])
def test_coordinates_off_the_globe_are_read_as_no_location(bot_app, lat, lng):
    """Valid doubles, but the geodesic code would raise on them."""
    bob = new_user()
    bot_app.say(bob, "follow")
    replies = bot_app.say(bob, "location", latitude=lat, longitude=lng)
    assert replies and not any(APOLOGY in t for t in replies)
    inp = router.to_input(events.location(bob, lat, lng, "t"))
    if -90 <= lat <= 90 and -180 <= lng <= 180:
        assert (inp.latitude, inp.longitude) == (lat, lng)
    else:
        assert inp.latitude is None and inp.longitude is None


# --- 4. a bug while running one event: logged, never a 500, the others run ----------------------


def test_a_bug_in_one_event_is_logged_and_the_others_still_run(bot_app, monkeypatch):
    real = router.to_input

    def broken_for_alice(event: dict[str, Any]):
        if event["source"]["userId"] == ALICE:
            raise RuntimeError("a bug")
        return real(event)

    monkeypatch.setattr(router, "to_input", broken_for_alice)
    bob = new_user()
    batch = [bot_app.event(ALICE, "follow"), bot_app.event(bob, "follow"), bot_app.event(ALICE, "text", text="x")]
    assert signed_post(bot_app.url, to_body(batch)).status_code == 200
    assert any(GREETING in t for t in bot_app.texts_since(bob, 0))
    failures = log_entries(bot_app, "webhook.event_failed")
    assert [(f["level"], f["error"], f["exc_info"]) for f in failures] == [("error", "RuntimeError", True)] * 2
    assert {f["user"] for f in failures} == {logs.pseudonym(ALICE)}


# --- 5. Hypothesis: mutated events of every kind the simulator builds ---------------------------

FIELD_NAMES = ["type", "id", "text", "userId", "groupId", "roomId", "replyToken", "mode", "timestamp", "message",
               "postback", "params", "data", "date", "latitude", "longitude", "address", "title", "imageSet",
               "index", "total", "contentProvider", "quoteToken", "markAsReadToken", "emojis", "mention",
               "mentionees", "follow", "isUnblocked", "deliveryContext", "isRedelivery", "source", "webhookEventId",
               "unsend", "stickerId", "keywords"]
ODD_STRINGS = ["", " ", "\x00", "a\x00b", "\u200f\u202eRTL", "😀", "👨‍👩‍👧", "\ud800", "\udfff", "x\ud83dy", "\ufeff",
               "あ" * 20_000, "a" * 100_000, ALICE, CAROL, "U" + "A" * 32, "C" + "1" * 32, "R" + "1" * 32,
               "01J8Z0F8Y7Q6K5M4N3P2R1S0T9", "message", "postback", "follow", "unfollow", "text", "image",
               "location", "sticker", "join", "user", "group", "room", "active", "standby", "line", "external",
               "1980-04-01", "NaN", "null", "true", "-1"]
HUGE = [0, -1, 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**300),
        1.5, -0.0, 1e308, -1e308, 5e-324, 91.0, -181.0]
RAW = [Raw("1e400"), Raw("-1e400"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1" + "0" * 5000),
       Raw("-" + "9" * 4400), Raw("1E-400"), Raw("[" * 200 + "]" * 200)]

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(ODD_STRINGS), st.sampled_from(HUGE), st.sampled_from(RAW),
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=()), max_size=30),  # any code point, lone surrogates too
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)
KINDS = ["text", "postback", "follow", "unfollow", "location", "image", "group", "room"]


def base_event(kind: str, user: str, token: str) -> dict[str, Any]:
    """An event as the simulator builds it (so as LINE sends it)."""
    if kind == "text":
        return events.text(user, "登録", token)
    if kind == "postback":
        return events.postback(user, "a=x", token, {"date": "1980-04-01"})
    if kind == "follow":
        return events.follow(user, token)
    if kind == "unfollow":
        return events.unfollow(user)
    if kind == "location":
        return events.location(user, 35.68, 139.76, token, title="東京駅", address="東京都千代田区")
    if kind == "image":
        return events.image(user, events.new_message_id(), token, {"id": "set", "index": 1, "total": 2})
    source = events.group_source("C" + "1" * 32, user) if kind == "group" else events.room_source("R" + "1" * 32, user)
    return events.text(user, "登録", token, source=source)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside ``value`` (dict keys and list items), the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def same_type(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same JSON type: odd Unicode for a string, a huge number for a number."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, str):
        return st.sampled_from(ODD_STRINGS) | st.text(st.characters(exclude_categories=()), max_size=30)
    if isinstance(value, int):
        return st.sampled_from([h for h in HUGE if isinstance(h, int)]) | st.integers(-(2**70), 2**70)
    if isinstance(value, float):
        return st.sampled_from(HUGE + RAW[:5]) | st.floats()
    return values


def mutate(data: st.DataObject, event: dict[str, Any]) -> Any:
    """One to three changes anywhere in the event. Rough ones (wrong types, missing
    fields, known fields added where they do not belong) make it malformed nearly
    always, so half the examples only make gentle ones (odd values of the right type,
    unknown fields), which LINE's schema often still allows."""
    gentle = data.draw(st.booleans(), label="gentle")
    ops = ["same type", "add"] if gentle else ["replace", "same type", "delete", "add"]
    root: list[Any] = [event]  # a holder, so the event itself can be replaced
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        # A seeded pick: sampled_from would lean hard on its first choice (the event itself).
        path = (0, *data.draw(st.randoms(use_true_random=False), label="where").choice(paths(root[0])))
        parent = root
        for part in path[:-1]:
            parent = parent[part]
        current = parent[path[-1]]
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "add" and isinstance(current, dict):
            names = st.text(min_size=1, max_size=8) if gentle else st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
            current[data.draw(names, label="key")] = data.draw(values, label="value")
        elif op == "same type" and not isinstance(current, (dict, list)):
            parent[path[-1]] = data.draw(same_type(current), label="value")
        elif not gentle:
            parent[path[-1]] = data.draw(values, label="value")
    return root[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(KINDS), valid_first=st.booleans())
def test_no_signed_mutation_of_any_event_is_a_5xx(bot_app, data, kind, valid_first):
    bob = new_user()
    good = bot_app.event(bob, "follow")
    mutated = mutate(data, base_event(kind, ALICE, bot_app.line.issue_reply_token(ALICE)))
    batch = [good, mutated] if valid_first else [mutated, good]
    body = to_body(batch)
    keys_before, rows_before = event_keys(bot_app), processed_ids()

    response = signed_post(bot_app.url, body)

    assert response.status_code == 200, response.text
    assert any(GREETING in t for t in bot_app.texts_since(bob, 0)), "the valid event lost its reply"
    # Nothing crashed quietly either: no event lost to a bug, no flow apologising.
    assert not log_entries(bot_app, "webhook.event_failed") and not log_entries(bot_app, "flow.error")
    parsed = as_parsed(body)[1 if valid_first else 0]
    refused = spec_refuses(parsed)
    hypothesis.event("LINE's schema refuses it" if refused else "LINE's schema allows it")
    if refused:  # malformed by LINE's own schema: it never reached accept()
        assert event_keys(bot_app) - keys_before == {bot_app.rt.keys.event(good["webhookEventId"])}
        assert processed_ids() - rows_before == {good["webhookEventId"]}


# --- 6. the schema is LINE's: the file is the vendored one, and it agrees with the oracle -------


def test_the_handlers_copy_of_the_spec_is_the_vendored_file():
    here, vendored = Path(event_schema.SPEC).parent, Path(WEBHOOK_SPEC).parent
    assert (here / "webhook.yml").read_bytes() == (vendored / "webhook.yml").read_bytes()
    assert (here / "LICENSE").read_bytes() == (vendored / "LICENSE").read_bytes()


# Well-formed events of the types the bot does not handle, straight from LINE's reference.
COMMON = {"mode": "active", "timestamp": 1_700_000_000_000, "webhookEventId": "01J8Z0F8Y7Q6K5M4N3P2R1S0T9",
          "deliveryContext": {"isRedelivery": False}, "source": {"type": "user", "userId": ALICE}}
OTHER_EVENTS = [
    {"type": "message", "replyToken": "t", "message": {"type": "sticker", "id": "1", "packageId": "1", "stickerId": "2",
                                                        "stickerResourceType": "STATIC", "quoteToken": "q",
                                                        "keywords": ["a"], "text": "hi"}},
    {"type": "message", "replyToken": "t", "message": {"type": "video", "id": "1", "duration": 1000,
                                                        "contentProvider": {"type": "line"}, "quoteToken": "q"}},
    {"type": "message", "replyToken": "t", "message": {"type": "audio", "id": "1", "contentProvider": {
        "type": "external", "originalContentUrl": "https://example.com/a.m4a"}}},
    {"type": "message", "replyToken": "t", "message": {"type": "file", "id": "1", "fileName": "a.pdf", "fileSize": 3}},
    {"type": "message", "replyToken": "t", "message": {
        "type": "text", "id": "1", "text": "@all $ hi", "quoteToken": "q",
        "emojis": [{"index": 5, "length": 1, "productId": "p", "emojiId": "e"}],
        "mention": {"mentionees": [{"type": "all", "index": 0, "length": 4},
                                   {"type": "user", "index": 0, "length": 4, "userId": "x", "isSelf": True}]}}},
    {"type": "unsend", "unsend": {"messageId": "1"}},
    {"type": "join", "replyToken": "t", "source": {"type": "group", "groupId": "C" + "1" * 32}},
    {"type": "leave", "source": {"type": "room", "roomId": "R" + "1" * 32}},
    {"type": "memberJoined", "replyToken": "t", "joined": {"members": [{"type": "user", "userId": ALICE}]}},
    {"type": "memberLeft", "left": {"members": [{"type": "user", "userId": ALICE}]}},
    {"type": "videoPlayComplete", "replyToken": "t", "videoPlayComplete": {"trackingId": "v"}},
    {"type": "beacon", "replyToken": "t", "beacon": {"hwid": "d41d8cd98f", "type": "enter"}},
    {"type": "accountLink", "replyToken": "t", "link": {"result": "ok", "nonce": "n"}},
    {"type": "membership", "replyToken": "t", "membership": {"type": "joined", "membershipId": 3}},
    {"type": "module", "module": {"type": "attached", "botId": "U" + "0" * 32, "scopes": ["message:send"]}},
    {"type": "activated", "chatControl": {"expireAt": 1_700_000_000_000}},
    {"type": "deactivated"},
    {"type": "botSuspended"},
    {"type": "botResumed"},
    {"type": "delivery", "delivery": {"data": "d"}},
]


@pytest.mark.parametrize("extra", OTHER_EVENTS, ids=lambda e: e.get("message", {}).get("type", e["type"]))
def test_every_event_type_of_the_spec_is_accepted(extra):
    event = {**COMMON, **extra}
    assert not spec_refuses(event)  # the example really is well-formed
    assert event_schema.problem(event) is None


@settings(max_examples=400, deadline=None)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_the_schema_never_accepts_what_lines_schema_refuses(data, kind):
    """Same verdict as jsonschema over LINE's file in the direction that matters:
    whatever the bot lets through, LINE's schema allows. And ``to_input`` is safe on it."""
    body = to_body([mutate(data, base_event(kind, ALICE, "r" * 32))])
    event = as_parsed(body)[0]
    found = event_schema.problem(event)
    assert found is None or (found.startswith("$") and ": " in found)
    hypothesis.event("malformed" if found else "well-formed")
    if found is None:
        assert not spec_refuses(event), schema_validator("Event", WEBHOOK_SPEC).violations(event)
        if isinstance(event.get("source"), dict):
            inp = router.to_input(event)
            assert isinstance(inp.text, str) and isinstance(inp.data, str) and isinstance(inp.params, dict)
            assert all(isinstance(v, str) for v in inp.params.values())
            assert inp.latitude is None or (-90 <= inp.latitude <= 90 and -180 <= inp.longitude <= 180)
            assert 0 <= inp.timestamp_ms < 253_370_764_800_000


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(
    exclude_categories=())), lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_the_schema_check_is_total(value):
    found = event_schema.problem(value)
    assert found is None or isinstance(found, str)
    assert found is not None or isinstance(value, dict)


def test_the_check_is_cheap_enough_for_the_hot_path():
    import timeit

    event = events.text(ALICE, "こんにちは、登録をお願いします", "r" * 32)
    runs = 2000
    seconds = min(timeit.repeat(lambda: event_schema.problem(event), number=runs, repeat=5)) / runs
    assert seconds < 50e-6, f"{seconds * 1e6:.1f} µs per event"
