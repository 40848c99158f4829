"""The LINE API wrapper against the fake platform over real HTTP."""
from __future__ import annotations

import uuid

import pytest

from conversations.kit.messages import text
from handlers.line_api import LineApi, LineApiError
from tests.conftest import TOKEN

ERIN = "U" + "f" * 32


@pytest.fixture
def api(platform_server):
    line, url = platform_server
    line.reset()
    yield LineApi(TOKEN, url, url, timeout=2.0), line
    assert not line.violations
    line.reset()


def test_reply_push_content_profile_and_loading(api):
    client, line = api
    client.reply(line.issue_reply_token(ERIN), [text("こんにちは", ["はい"])])
    client.push(ERIN, [text("お知らせ")], retry_key=str(uuid.uuid4()))
    assert [d["via"] for d in line.deliveries_for(ERIN)] == ["reply", "push"]
    message_id = line.add_content(b"\x89PNG fake", "image/png")
    assert client.content(message_id) == b"\x89PNG fake"
    line.set_user(ERIN, "山田 花子")
    assert client.display_name(ERIN) == "山田 花子"
    client.show_loading(ERIN, 5)


def test_refused_reply_token_raises_a_non_transient_error(api):
    client, _ = api
    with pytest.raises(LineApiError) as err:
        client.reply("never-issued", [text("x")])
    assert err.value.status == 400 and not err.value.transient


def test_every_call_has_a_timeout(api):
    client, line = api
    client.timeout = 0.3
    line.fail("/v2/bot/message/push", 200, count=1, delay=1.0)
    with pytest.raises(LineApiError) as err:
        client.push(ERIN, [text("x")], retry_key=str(uuid.uuid4()))
    assert err.value.status is None and err.value.transient


def test_wrong_token_is_refused(platform_server):
    line, url = platform_server
    with pytest.raises(LineApiError) as err:
        LineApi("wrong", url, url).push(ERIN, [text("x")], retry_key=str(uuid.uuid4()))
    assert err.value.status == 401
