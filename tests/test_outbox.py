"""Outbox delivery: no push lost, none sent twice, quota exhaustion surfaced."""
from __future__ import annotations

import json
import uuid

import requests

from handlers import outbox
from storage import repo
from storage.models import Outbox
from tests.conftest import TOKEN

CAROL = "U" + "c" * 32
HELLO = [{"type": "text", "text": "審査結果のお知らせです。"}]


def queue(reason: str = "test") -> Outbox:
    row = repo.queue_push(CAROL, HELLO, reason)
    outbox.enqueue([row.id])
    return row


def pushes(bot_app) -> list[dict]:
    return [d for d in bot_app.line.deliveries_for(CAROL) if d["via"] == "push"]


def test_push_is_delivered_with_the_rows_uuid_as_retry_key(bot_app):
    row = queue()
    bot_app.drain()
    [delivery] = pushes(bot_app)
    assert delivery["retryKey"] == row.uuid
    assert Outbox.get_by_id(row.id).status == "sent"
    from handlers.logs import pseudonym

    call = next(json.loads(line) for line in bot_app.log_lines() if '"line_api.call"' in line and '"push"' in line)
    assert (call["user"], call["outbox_id"]) == (pseudonym(CAROL), row.id), "a push's line says whom it went to"


def test_server_errors_are_retried_until_delivered_once(bot_app):
    bot_app.line.fail("/v2/bot/message/push", 500, count=2)
    row = queue()
    bot_app.drain()
    assert len(pushes(bot_app)) == 1
    row = Outbox.get_by_id(row.id)
    assert (row.status, row.attempts) == ("sent", 3)


def test_timeouts_are_retried(bot_app):
    bot_app.rt.line.timeout = 0.3
    bot_app.line.fail("/v2/bot/message/push", 500, count=1, delay=1.0)
    row = queue()
    bot_app.drain()
    assert len(pushes(bot_app)) == 1
    assert Outbox.get_by_id(row.id).status == "sent"


def test_already_accepted_retry_key_409_counts_as_delivered(bot_app):
    row = repo.queue_push(CAROL, HELLO, "test")
    # The first attempt reached LINE but its response was lost:
    first = requests.post(
        bot_app.config.line_api_base_url + "/v2/bot/message/push",
        json={"to": CAROL, "messages": HELLO},
        headers={"Authorization": f"Bearer {TOKEN}", "X-Line-Retry-Key": row.uuid},
        timeout=5,
    )
    assert first.status_code == 200
    outbox.enqueue([row.id])
    bot_app.drain()
    assert len(pushes(bot_app)) == 1, "LINE refused the second delivery"
    assert Outbox.get_by_id(row.id).status == "sent"


def test_monthly_quota_429_is_failed_and_logged_for_ops(bot_app):
    bot_app.line.fail("/v2/bot/message/push", 429, count=1, body={"message": "You have reached your monthly limit."})
    row = queue()
    assert Outbox.get_by_id(row.id).messages == HELLO, "held until delivered or failed for good"
    bot_app.drain()
    assert pushes(bot_app) == []
    failed = Outbox.get_by_id(row.id)
    assert failed.status == "failed"
    # Failed for good: the rendered messages are cleared like a delivered row's; the metadata stays.
    assert failed.messages is None, "a push that will never be retried keeps no payload"
    assert (failed.to, failed.uuid, failed.attempts) == (CAROL, row.uuid, 1) and failed.last_error
    errors = [json.loads(line) for line in bot_app.log_lines() if "outbox.quota_exhausted" in line]
    assert errors and errors[0]["level"] == "error"


def test_sweep_requeues_rows_whose_enqueue_was_lost(bot_app):
    row = repo.queue_push(CAROL, HELLO, "crash between commit and enqueue")
    assert outbox.sweep(older_than_seconds=0) == 1
    bot_app.drain()
    assert len(pushes(bot_app)) == 1
    assert Outbox.get_by_id(row.id).status == "sent"
    assert outbox.sweep(older_than_seconds=0) == 0


def test_delivering_twice_sends_once(bot_app):
    row = queue()
    outbox.enqueue([row.id])
    bot_app.drain()
    assert len(pushes(bot_app)) == 1


def test_retry_keys_are_uuids(bot_app):
    row = repo.queue_push(CAROL, HELLO, "test")
    assert uuid.UUID(row.uuid).version == 4


def test_pushes_to_a_user_who_blocked_the_account_are_closed_without_retry_until_they_follow_again(bot_app):
    bot_app.say(CAROL, "follow")
    bot_app.say(CAROL, "unfollow")
    row = queue("while_blocked")
    bot_app.drain()
    closed = Outbox.get_by_id(row.id)
    assert (closed.status, closed.attempts, closed.messages) == ("blocked", 0, None), "no call to LINE, nothing kept"
    assert pushes(bot_app) == []
    assert any('"outbox.blocked"' in line for line in bot_app.log_lines())
    bot_app.say(CAROL, "follow")  # unblocked: pushes go out again
    row = queue("after_follow")
    bot_app.drain()
    assert Outbox.get_by_id(row.id).status == "sent" and len(pushes(bot_app)) == 1


def test_a_multicast_row_reaches_500_users_per_call_and_leaves_out_who_blocked(bot_app):
    from storage.models import LineUser

    users = [f"U{n:032x}" for n in range(1, 1202)]
    LineUser.create(line_user_id=users[7], following=False)  # blocked the account since
    rows = repo.queue_multicast(users, HELLO, "conditions_revised")
    assert [len(json.loads(r.recipients)) for r in rows] == [500, 500, 201]
    outbox.enqueue([r.id for r in rows])
    bot_app.drain()
    multicasts = [d for d in bot_app.line.deliveries_for() if d["via"] == "multicast"]
    assert len({d["requestId"] for d in multicasts}) == 3, "one API call per 500 recipients"
    assert sorted(d["to"] for d in multicasts) == sorted(u for u in users if u != users[7])
    assert {Outbox.get_by_id(r.id).status for r in rows} == {"sent"}
    assert all(Outbox.get_by_id(r.id).messages is None for r in rows)
    # A second delivery of the same rows is skipped; a lost response retried is a 409 at LINE.
    assert outbox.deliver(rows[0].id) == "skipped"


def test_a_multicast_retried_after_a_lost_response_is_not_sent_twice(bot_app):
    users = [f"U{n:032x}" for n in range(1, 4)]
    [row] = repo.queue_multicast(users, HELLO, "conditions_revised")
    bot_app.rt.line.multicast(users, HELLO, retry_key=row.uuid)  # reached LINE; the response was lost
    outbox.enqueue([row.id])
    bot_app.drain()
    assert len([d for d in bot_app.line.deliveries_for() if d["via"] == "multicast"]) == 3
    assert Outbox.get_by_id(row.id).status == "sent"
