"""The HTTP edge: signature, body limits, dedupe, ordering, serialisation, failure."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
from peewee import SqliteDatabase

import bot
from handlers import runtime
from simulator import events
from storage import db as storage_db
from storage import repo
from storage.models import Expert, LineUser, Outbox, ProcessedEvent
from tests.conftest import SECRET, make_config

ALICE = "U" + "a" * 32
BOB = "U" + "b" * 32


def signed_post(url: str, body: str, secret: str = SECRET, **headers: str) -> requests.Response:
    return requests.post(
        url + "/callback",
        data=body.encode("utf-8"),
        headers={"Content-Type": "application/json", "X-Line-Signature": events.sign(body, secret), **headers},
        timeout=10,
    )


def test_signature_matches_lines_published_vector():
    body = '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    assert events.sign(body, "8c570fa6dd201bb328f1c1eac23a96d8") == "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="


def test_published_vector_is_accepted_and_empty_events_answer_200(bot_app):
    body = '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    response = requests.post(
        bot_app.url + "/callback",
        data=body,
        headers={"X-Line-Signature": "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200


@pytest.mark.parametrize("signature", [None, "", "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=", "not base64 \xe9"])
def test_missing_or_wrong_signature_is_400_and_nothing_runs(bot_app, signature):
    event = bot_app.event(ALICE, "follow")
    body = events.body([event])
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Line-Signature"] = signature
    response = requests.post(bot_app.url + "/callback", data=body.encode(), headers=headers, timeout=5)
    assert response.status_code == 400
    assert bot_app.line.deliveries_for(ALICE) == []
    assert LineUser.select().count() == 0


def test_body_over_one_mebibyte_is_413(bot_app):
    body = json.dumps({"destination": "x", "events": [], "pad": "x" * (1024 * 1024)})
    assert signed_post(bot_app.url, body).status_code == 413


@pytest.mark.parametrize("body", ["not json", "[]", '{"events": {}}', '{"destination": "x"}', "{"])
def test_signed_body_that_is_not_a_webhook_payload_is_400(bot_app, body):
    assert signed_post(bot_app.url, body).status_code == 400


def test_standby_events_change_nothing_and_send_nothing(bot_app):
    event = events.follow(ALICE, bot_app.line.issue_reply_token(ALICE))
    event["mode"] = "standby"
    assert bot_app.post([event]).status_code == 200
    assert bot_app.line.deliveries_for(ALICE) == []
    assert LineUser.select().count() == 0


def test_group_and_room_sources_are_ignored(bot_app):
    token = bot_app.line.issue_reply_token(ALICE)
    group = events.text(ALICE, "登録", token, source=events.group_source("C" + "1" * 32, ALICE))
    room = events.text(ALICE, "登録", token, source=events.room_source("R" + "1" * 32, ALICE))
    assert bot_app.post([group, room]).status_code == 200
    assert bot_app.line.deliveries_for(ALICE) == []


def test_events_of_several_users_each_run_in_order(bot_app):
    batch = [
        bot_app.event(ALICE, "follow"),
        bot_app.event(BOB, "follow"),
        bot_app.event(ALICE, "text", text="同意する"),
        bot_app.event(BOB, "text", text="同意しない"),
    ]
    assert bot_app.post(batch).status_code == 200
    alice = bot_app.texts_since(ALICE, 0)
    bob = bot_app.texts_since(BOB, 0)
    assert "機関コード" in alice[-1]
    assert "登録を進めることができません" in bob[-1]


def test_redelivered_event_has_no_second_effect(bot_app):
    follow = bot_app.event(ALICE, "follow")
    bot_app.post([follow])
    agree = bot_app.event(ALICE, "text", text="同意する")
    assert bot_app.post([agree]).status_code == 200
    count = len(bot_app.line.deliveries_for(ALICE))
    assert bot_app.post([events.redelivery(agree)]).status_code == 200
    assert bot_app.post([agree]).status_code == 200  # same id, isRedelivery false
    assert len(bot_app.line.deliveries_for(ALICE)) == count
    assert ProcessedEvent.select().count() == 2


def test_concurrent_duplicates_run_once(bot_app):
    event = bot_app.event(ALICE, "follow")
    body = events.body([event])
    results: list[int] = []

    def send() -> None:
        results.append(signed_post(bot_app.url, body).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6
    assert len(bot_app.line.deliveries_for(ALICE)) == 1


def test_sql_guard_holds_when_redis_forgot_the_event(bot_app):
    event = bot_app.event(ALICE, "follow")
    bot_app.post([event])
    bot_app.rt.redis.delete(bot_app.rt.keys.event(event["webhookEventId"]))
    assert bot_app.post([events.redelivery(event)]).status_code == 200
    assert len(bot_app.line.deliveries_for(ALICE)) == 1


def test_busy_user_event_is_deferred_to_the_worker_and_still_answered(bot_app):
    bot_app.say(ALICE, "follow")
    lock = bot_app.rt.worker_redis.lock(bot_app.rt.keys.lock(ALICE), timeout=30)
    assert lock.acquire()
    before = len(bot_app.line.deliveries_for(ALICE))
    started = time.monotonic()
    response = bot_app.post([bot_app.event(ALICE, "text", text="同意する")])
    assert response.status_code == 200
    assert time.monotonic() - started < 3
    assert len(bot_app.line.deliveries_for(ALICE)) == before  # not run yet
    lock.release()
    bot_app.drain()
    texts = bot_app.texts_since(ALICE, 0)[before:]
    assert any("機関コード" in t for t in texts)
    assert Expert.get().draft["terms_version"]


def test_one_users_concurrent_events_are_serialised(bot_app):
    """Ten messages at once from one user: each step sees the previous one's result."""
    bot_app.say(ALICE, "follow")
    bot_app.text(ALICE, "同意する")
    texts = ["状況"] * 10
    threads = [threading.Thread(target=bot_app.text, args=(ALICE, t)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot_app.drain()
    user = LineUser.get(LineUser.line_user_id == ALICE)
    session = bot_app.rt.gate.read_session(ALICE)
    assert session.v == user.session_rev == 12  # follow + agree + 10, none lost to a race


def test_refused_reply_token_falls_back_to_a_push(bot_app):
    event = events.follow(ALICE, "expired-or-unknown-token")
    assert bot_app.post([event]).status_code == 200
    assert bot_app.line.deliveries_for(ALICE) == []
    bot_app.drain()
    deliveries = bot_app.line.deliveries_for(ALICE)
    assert [d["via"] for d in deliveries] == ["push"]
    assert Outbox.get().status == "sent"


def test_redis_unreachable_answers_503_fast(bot_app, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers: a hung Redis
    hung_url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    config = make_config(hung_url, bot_app.config.database_url, bot_app.config.line_api_base_url, tmp_path)
    app = bot.create_app(config)
    client = app.test_client()
    body = events.body([bot_app.event(ALICE, "follow")])
    try:
        started = time.monotonic()
        response = client.post("/callback", data=body, headers={"X-Line-Signature": events.sign(body, SECRET),
                                                                "Content-Type": "application/json"})
        assert response.status_code == 503
        assert time.monotonic() - started < 1.0
        assert client.get("/healthz").status_code == 503
    finally:
        listener.close()
        runtime.install(bot_app.rt)
    assert LineUser.select().count() == 0


def test_database_error_answers_503_and_the_redelivery_runs(bot_app, tmp_path):
    good = storage_db.database.obj
    event = bot_app.event(ALICE, "follow")
    storage_db.database.initialize(SqliteDatabase(str(tmp_path / "no-such-dir" / "x.db")))  # cannot open
    try:
        assert bot_app.post([event]).status_code == 503
        assert bot_app.line.deliveries_for(ALICE) == []
    finally:
        storage_db.database.initialize(good)
    assert bot_app.post([events.redelivery(event)]).status_code == 200
    assert len(bot_app.line.deliveries_for(ALICE)) == 1


def test_healthz_reports_redis_and_database(bot_app):
    response = requests.get(bot_app.url + "/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "database": "ok"}


def test_lost_session_is_recomputed_from_the_draft(bot_app):
    code = repo.create_institution("復元商工会", "よろず").code
    bot_app.say(ALICE, "follow")
    bot_app.text(ALICE, "同意する")
    bot_app.text(ALICE, code)
    bot_app.rt.redis.flushdb()  # Redis lost everything
    texts = bot_app.text(ALICE, "山田 太郎")
    assert any("フリガナ" in t for t in texts)
    assert Expert.get().draft["family_name"] == "山田"


def test_stale_session_after_a_failed_session_write_is_recomputed(bot_app):
    code = repo.create_institution("古い商工会", "よろず").code
    bot_app.say(ALICE, "follow")
    bot_app.text(ALICE, "同意する")
    stale = bot_app.rt.redis.get(bot_app.rt.keys.session(ALICE))  # position: institution
    bot_app.text(ALICE, code)
    bot_app.rt.redis.set(bot_app.rt.keys.session(ALICE), stale)  # as if the save had failed
    texts = bot_app.text(ALICE, "山田 太郎")
    assert any("フリガナ" in t for t in texts), "stale position not trusted"


def test_saved_state_removed_by_a_deploy_is_mapped_politely(bot_app):
    bot_app.say(ALICE, "follow")
    raw = json.loads(bot_app.rt.redis.get(bot_app.rt.keys.session(ALICE)))
    raw["state"] = "state_that_was_removed"
    bot_app.rt.redis.set(bot_app.rt.keys.session(ALICE), json.dumps(raw))
    texts = bot_app.text(ALICE, "同意する")
    assert "システムの更新" in texts[0]
    assert any("同意しますか" in t for t in texts)


def test_idle_session_is_greeted_back(bot_app):
    bot_app.say(ALICE, "follow")
    key = bot_app.rt.keys.session(ALICE)
    raw = json.loads(bot_app.rt.redis.get(key))
    raw["updated_at"] -= 31 * 60
    bot_app.rt.redis.set(key, json.dumps(raw))
    texts = bot_app.text(ALICE, "同意する")
    assert "おかえりなさい" in texts[0]
    assert bot_app.last_quick_reply(ALICE) == ["続きから", "最初から"]
    texts = bot_app.text(ALICE, "続きから")
    assert any("同意しますか" in t for t in texts)
