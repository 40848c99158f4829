"""The fake LINE platform over real HTTP: what the bot will meet instead of LINE."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import requests
from flask import Flask, request
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessageAction,
    MessagingApi,
    MessagingApiBlob,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
    ShowLoadingAnimationRequest,
    TextMessage,
)
from linebot.v3.webhook import WebhookParser

from simulator.platform import PlatformState, create_platform_app, run_platform_in_thread

TOKEN = "test-channel-access-token"
SECRET = "test-channel-secret"
ALICE = "U" + "0" * 31 + "1"
BOB = "U" + "0" * 31 + "2"
ROOT = Path(__file__).resolve().parents[1]


class Platform:
    """A running platform: its base URL, its state and an authorised session."""

    def __init__(self, app: Flask, base_url: str) -> None:
        self.app = app
        self.url = base_url
        self.state: PlatformState = app.extensions["line_platform"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, json=json, timeout=5, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=5, **kwargs)

    def sdk(self) -> ApiClient:
        return ApiClient(Configuration(host=self.url, access_token=TOKEN))


def start(app: Flask) -> tuple[Any, Platform]:
    server, base_url = run_platform_in_thread(app)
    return server, Platform(app, base_url)


@pytest.fixture(scope="module")
def bot_webhook() -> Iterator[dict[str, Any]]:
    """A tiny bot: checks the signature with the SDK's parser, then replies to
    every event through the platform with the SDK (its base URL is set later)."""
    seen: dict[str, Any] = {"events": [], "platform": None}
    app = Flask("fake_bot")
    parser = WebhookParser(SECRET)

    @app.post("/callback")
    def callback() -> tuple[str, int]:
        parsed = parser.parse(request.get_data(as_text=True), request.headers["x-line-signature"])
        seen["events"].extend(parsed)
        with ApiClient(Configuration(host=seen["platform"], access_token=TOKEN)) as client:
            for event in parsed:
                if getattr(event, "reply_token", None):
                    MessagingApi(client).reply_message(ReplyMessageRequest(
                        reply_token=event.reply_token, messages=[TextMessage(text=f"受信: {event.type}")]))
        return "OK", 200

    server, url = run_platform_in_thread(app)
    seen["url"] = url + "/callback"
    yield seen
    server.shutdown()


@pytest.fixture(scope="module")
def running(bot_webhook: dict[str, Any]) -> Iterator[Platform]:
    app = create_platform_app(channel_access_token=TOKEN, channel_secret=SECRET,
                              webhook_url=bot_webhook["url"])
    app.config["SIM_BANNER"] = "デモ機関コード: DEMO-1234"
    server, platform = start(app)
    bot_webhook["platform"] = platform.url
    yield platform
    server.shutdown()


@pytest.fixture()
def platform(running: Platform) -> Platform:
    running.state.reset()
    return running


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff")) + chunk(b"IEND", b""))


# --- auth -----------------------------------------------------------------------

def test_requests_without_the_channel_token_get_401(platform: Platform) -> None:
    body = {"to": ALICE, "messages": [{"type": "text", "text": "x"}]}
    missing = requests.post(platform.url + "/v2/bot/message/push", json=body, timeout=5)
    wrong = requests.post(platform.url + "/v2/bot/message/push", json=body, timeout=5,
                          headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert "access token" in wrong.json()["message"]
    assert platform.state.deliveries == []


# --- reply tokens -----------------------------------------------------------------

def test_reply_token_works_once(platform: Platform) -> None:
    token = platform.post("/_sim/reply-token", {"userId": ALICE}).json()["replyToken"]
    body = {"replyToken": token, "messages": [{"type": "text", "text": "ようこそ"}]}
    first = platform.post("/v2/bot/message/reply", body)
    again = platform.post("/v2/bot/message/reply", body)
    assert first.status_code == 200
    assert first.json()["sentMessages"][0]["id"].isdigit()
    assert (again.status_code, again.json()) == (400, {"message": "Invalid reply token"})
    assert platform.state.texts_for(ALICE) == ["ようこそ"]


def test_unknown_reply_token_is_invalid(platform: Platform) -> None:
    response = platform.post("/v2/bot/message/reply",
                             {"replyToken": "f" * 32, "messages": [{"type": "text", "text": "x"}]})
    assert (response.status_code, response.json()) == (400, {"message": "Invalid reply token"})


def test_reply_token_expires() -> None:
    app = create_platform_app(channel_access_token=TOKEN, channel_secret=SECRET, reply_token_ttl=0.2)
    server, platform = start(app)
    try:
        token = platform.state.issue_reply_token(ALICE)
        time.sleep(0.3)
        response = platform.post("/v2/bot/message/reply",
                                 {"replyToken": token, "messages": [{"type": "text", "text": "遅い"}]})
        assert response.status_code == 400
        assert platform.state.deliveries == []
    finally:
        server.shutdown()


# --- push, retry keys, failures ------------------------------------------------------

def push_body(text: str = "お知らせ", to: str = ALICE) -> dict[str, Any]:
    return {"to": to, "messages": [{"type": "text", "text": text}]}


def test_same_retry_key_is_accepted_once(platform: Platform) -> None:
    key = str(uuid4())
    first = platform.post("/v2/bot/message/push", push_body(), headers={"X-Line-Retry-Key": key})
    second = platform.post("/v2/bot/message/push", push_body(), headers={"X-Line-Retry-Key": key})
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["message"] == "The retry key is already accepted"
    assert second.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert [d["retryKey"] for d in platform.state.deliveries] == [key]


def test_retry_key_must_be_a_uuid(platform: Platform) -> None:
    response = platform.post("/v2/bot/message/push", push_body(), headers={"X-Line-Retry-Key": "outbox-1"})
    assert response.status_code == 400
    assert platform.state.deliveries == []
    assert platform.state.violations[0]["violations"] == ["X-Line-Retry-Key: must be a UUID"]


def test_injected_failures_happen_before_delivery(platform: Platform) -> None:
    platform.post("/_sim/fail", {"path": "/v2/bot/message/push", "status": 500, "count": 2})
    key = str(uuid4())
    statuses = [platform.post("/v2/bot/message/push", push_body(), headers={"X-Line-Retry-Key": key}).status_code
                for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(platform.state.deliveries) == 1


def test_injected_failure_body_is_returned(platform: Platform) -> None:
    quota = {"message": "You have reached your monthly limit."}
    platform.state.fail("/v2/bot/message/push", 429, body=quota)
    response = platform.post("/v2/bot/message/push", push_body())
    assert (response.status_code, response.json()) == (429, quota)


def test_a_timed_out_push_that_was_delivered_answers_409_on_retry(platform: Platform) -> None:
    # status < 400 only delays: LINE delivered, the client gave up waiting.
    platform.state.fail("/v2/bot/message/push", 200, delay=0.4)
    key = str(uuid4())
    with pytest.raises(requests.Timeout):
        platform.http.post(platform.url + "/v2/bot/message/push", json=push_body(), timeout=0.1,
                           headers={"X-Line-Retry-Key": key})
    assert platform.state.wait_for(ALICE, timeout=2)
    retry = platform.post("/v2/bot/message/push", push_body(), headers={"X-Line-Retry-Key": key})
    assert retry.status_code == 409
    assert len(platform.state.deliveries) == 1


def test_multicast_delivers_to_each_user(platform: Platform) -> None:
    response = platform.post("/v2/bot/message/multicast",
                             {"to": [ALICE, BOB], "messages": [{"type": "text", "text": "全員へ"}]})
    assert response.status_code == 200
    assert platform.state.texts_for(ALICE) == platform.state.texts_for(BOB) == ["全員へ"]
    assert {d["via"] for d in platform.state.deliveries} == {"multicast"}


# --- contract ---------------------------------------------------------------------------

def test_contract_violation_is_refused_and_recorded(platform: Platform) -> None:
    response = platform.post("/v2/bot/message/push", {"to": ALICE, "messages": [{"type": "text"}]})
    assert response.status_code == 400
    assert response.json() == {
        "message": "The request body has 1 error(s)",
        "details": [{"message": "must be specified", "property": "messages[0].text"}],
    }
    assert platform.state.deliveries == []
    [violation] = platform.state.violations
    assert violation["path"] == "/v2/bot/message/push"
    assert violation["violations"] == ["messages[0].text: must be specified"]
    assert platform.get("/_sim/violations").json()[0]["violations"] == violation["violations"]


def test_contract_checks_can_be_switched_off() -> None:
    app = create_platform_app(channel_access_token=TOKEN, channel_secret=SECRET, check_contract=False)
    server, platform = start(app)
    try:
        response = platform.post("/v2/bot/message/push", {"to": ALICE, "messages": [{"type": "bogus"}]})
        assert response.status_code == 200
        assert platform.state.violations == []
    finally:
        server.shutdown()


# --- the SDK against the platform ------------------------------------------------------

def test_sdk_reply_and_push_are_delivered(platform: Platform) -> None:
    token = platform.state.issue_reply_token(ALICE)
    key = str(uuid4())
    with platform.sdk() as client:
        api = MessagingApi(client)
        reply = api.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(
            text="生年月日を教えてください",
            quick_reply=QuickReply(items=[QuickReplyItem(action=MessageAction(label="スキップ", text="スキップ")),
                                          QuickReplyItem(action=PostbackAction(label="戻る", data="back"))]))]))
        push = api.push_message(PushMessageRequest(to=BOB, messages=[TextMessage(text="新しい申請があります")]),
                                x_line_retry_key=key)
        with pytest.raises(ApiException) as conflict:
            api.push_message(PushMessageRequest(to=BOB, messages=[TextMessage(text="新しい申請があります")]),
                             x_line_retry_key=key)
    assert reply.sent_messages[0].quote_token
    assert push.sent_messages
    assert conflict.value.status == 409
    assert platform.state.texts_for(ALICE) == ["生年月日を教えてください"]
    assert platform.state.messages_for(ALICE)[0]["quickReply"]["items"][1]["action"]["data"] == "back"
    assert [(d["to"], d["via"], d["retryKey"]) for d in platform.state.deliveries] == [
        (ALICE, "reply", None), (BOB, "push", key)]
    assert platform.state.violations == []


def test_sdk_profile_and_loading(platform: Platform) -> None:
    platform.post("/_sim/users", {"userId": ALICE, "displayName": "山田 太郎"})
    with platform.sdk() as client:
        api = MessagingApi(client)
        assert api.get_profile(ALICE).display_name == "山田 太郎"
        assert api.get_profile(BOB).display_name  # made up, but stable
        api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=ALICE, loading_seconds=10))
    assert platform.get("/v2/bot/profile/nobody").status_code == 400
    assert platform.post("/v2/bot/chat/loading/start", {"chatId": ALICE}).status_code == 202


def test_content_round_trip(platform: Platform) -> None:
    photo = b"\xff\xd8\xff\xe0fake-jpeg-bytes"
    upload = requests.post(platform.url + "/_sim/content", data=photo,
                           headers={"Content-Type": "image/jpeg"}, timeout=5)
    message_id = upload.json()["messageId"]
    fetched = platform.get(f"/v2/bot/message/{message_id}/content")
    assert (fetched.status_code, fetched.content, fetched.headers["Content-Type"]) == (200, photo, "image/jpeg")
    with platform.sdk() as client:
        assert bytes(MessagingApiBlob(client).get_message_content(message_id)) == photo
    assert platform.get("/v2/bot/message/999/content").status_code == 404


def test_rich_menu_lifecycle(platform: Platform) -> None:
    menu = RichMenuRequest(
        size=RichMenuSize(width=2500, height=843), selected=True, name="expert", chat_bar_text="メニュー",
        areas=[RichMenuArea(bounds=RichMenuBounds(x=0, y=0, width=1250, height=843),
                            action=PostbackAction(label="チェックイン", data="menu=checkin"))])
    with platform.sdk() as client:
        api, blob = MessagingApi(client), MessagingApiBlob(client)
        menu_id = api.create_rich_menu(menu).rich_menu_id
        with pytest.raises(ApiException) as no_image:
            api.link_rich_menu_id_to_user(ALICE, menu_id)
        blob.set_rich_menu_image(menu_id, tiny_png(), _headers={"Content-Type": "image/png"})
        api.link_rich_menu_id_to_user(ALICE, menu_id)
        api.set_default_rich_menu(menu_id)
        assert api.get_rich_menu_id_of_user(ALICE).rich_menu_id == menu_id
        assert [m.rich_menu_id for m in api.get_rich_menu_list().richmenus] == [menu_id]
        api.unlink_rich_menu_id_from_user(ALICE)
        with pytest.raises(ApiException) as unlinked:
            api.get_rich_menu_id_of_user(ALICE)
        api.delete_rich_menu(menu_id)
        assert api.get_rich_menu_list().richmenus == []
    assert no_image.value.status == 400
    assert unlinked.value.status == 404
    gone = platform.post(f"/v2/bot/richmenu/{menu_id}/content", data=tiny_png(), headers={"Content-Type": "image/png"})
    assert gone.status_code == 404


def test_rich_menu_image_must_be_png_or_jpeg_up_to_1mb(platform: Platform) -> None:
    body = {"size": {"width": 2500, "height": 843}, "selected": False, "name": "m", "chatBarText": "メニュー",
            "areas": []}
    menu_id = platform.post("/v2/bot/richmenu", body).json()["richMenuId"]
    upload = f"/v2/bot/richmenu/{menu_id}/content"
    assert platform.post(upload, data=b"GIF89a", headers={"Content-Type": "image/gif"}).status_code == 415
    assert platform.post(upload, data=b"x" * (1024 * 1024 + 1),
                         headers={"Content-Type": "image/png"}).status_code == 413
    assert platform.post(upload, data=tiny_png(), headers={"Content-Type": "image/png"}).status_code == 200
    assert platform.post(upload, data=tiny_png(), headers={"Content-Type": "image/png"}).status_code == 400


# --- acting as LINE towards the bot ------------------------------------------------------

def test_sim_send_signs_events_the_sdk_accepts(platform: Platform, bot_webhook: dict[str, Any]) -> None:
    bot_webhook["events"].clear()
    sends = [
        {"type": "follow"},
        {"type": "text", "text": "登録"},
        {"type": "postback", "data": "step=birth", "params": {"date": "1980-04-01"}},
        {"type": "location", "latitude": 35.68, "longitude": 139.76, "title": "東京駅"},
        {"type": "image", "messageId": platform.state.add_content(b"jpeg", "image/jpeg")},
        {"type": "unfollow"},
    ]
    for fields in sends:
        response = platform.post("/_sim/send", {"userId": ALICE, **fields})
        assert response.json() == {"status": 200}
    assert [e.type for e in bot_webhook["events"]] == ["follow", "message", "postback", "message", "message",
                                                       "unfollow"]
    assert bot_webhook["events"][2].postback.params == {"date": "1980-04-01"}
    assert platform.state.texts_for(ALICE) == ["受信: follow", "受信: message", "受信: postback",
                                               "受信: message", "受信: message"]
    assert platform.get(f"/v2/bot/profile/{ALICE}").status_code == 404  # blocked
    assert platform.state.violations == []


def test_sim_send_refuses_bad_user_ids(platform: Platform) -> None:
    assert platform.post("/_sim/send", {"userId": "alice", "type": "text", "text": "x"}).status_code == 400


def test_messages_endpoint_filters_by_user_and_sequence(platform: Platform) -> None:
    for text in ("一", "二"):
        platform.post("/v2/bot/message/push", push_body(text))
    platform.post("/v2/bot/message/push", push_body("他人", to=BOB))
    mine = platform.get("/_sim/messages", params={"user": ALICE}).json()
    later = platform.get("/_sim/messages", params={"user": ALICE, "after": mine[0]["seq"]}).json()
    assert [d["messages"][0]["text"] for d in mine] == ["一", "二"]
    assert [d["messages"][0]["text"] for d in later] == ["二"]
    assert set(mine[0]) >= {"seq", "to", "via", "messages", "retryKey", "at"}


def test_reset_forgets_everything(platform: Platform) -> None:
    platform.post("/v2/bot/message/push", push_body())
    platform.post("/v2/bot/message/push", {"to": ALICE, "messages": []})
    token = platform.state.issue_reply_token(ALICE)
    platform.state.fail("/v2/bot/message/push", 500, count=5)
    assert platform.post("/_sim/reset").status_code == 200
    assert platform.state.deliveries == [] and platform.state.violations == []
    assert platform.post("/v2/bot/message/push", push_body()).status_code == 200
    assert platform.post("/v2/bot/message/reply", {"replyToken": token, "messages": [
        {"type": "text", "text": "x"}]}).status_code == 400


def test_chat_page_and_banner(platform: Platform) -> None:
    page = requests.get(platform.url + "/", timeout=5)
    assert page.status_code == 200
    assert "友だち追加" in page.text and "/_sim/messages" in page.text
    assert requests.get(platform.url + "/_sim/info", timeout=5).json()["banner"] == "デモ機関コード: DEMO-1234"


def test_unknown_api_paths_answer_like_line(platform: Platform) -> None:
    response = platform.get("/v2/bot/nothing-here")
    assert (response.status_code, response.json()) == (404, {"message": "Not found"})


def test_runs_standalone_as_a_module() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.platform", "--port", "0", "--token", TOKEN, "--secret", SECRET,
         "--no-contract", "--banner", "ベンチ"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # "LINE simulator on http://127.0.0.1:PORT/ ..."
        base_url = line.split()[3].rstrip("/")
        info = requests.get(base_url + "/_sim/info", timeout=5).json()
        assert info["banner"] == "ベンチ" and info["contractChecks"] is False
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_activity_counts_deliveries_per_user(platform: Platform) -> None:
    for text in ("一", "二"):
        platform.post("/v2/bot/message/push", push_body(text))
    platform.post("/v2/bot/message/push", push_body("他人", to=BOB))
    activity = platform.get("/_sim/activity").json()
    assert activity[ALICE]["count"] == 2 and activity[BOB]["count"] == 1
    assert activity[BOB]["last"] > activity[ALICE]["last"]


def test_logs_endpoint_says_when_no_bot_logs_are_attached(platform: Platform) -> None:
    body = platform.get("/_sim/logs", params={"user": ALICE}).json()
    assert body == {"available": False, "entries": [], "next": 0}


def test_transcript_has_both_sides_in_order(platform: Platform) -> None:
    """A reloaded chat page redraws what the user sent, before the bot's answer to it."""
    echo = [{"type": "text", "text": "登録"}]
    assert platform.post("/_sim/send", {"userId": ALICE, "type": "text", "text": "登録",
                                        "echo": echo, "clientId": "c1"}).json() == {"status": 200}
    platform.post("/_sim/send", {"userId": BOB, "type": "text", "text": "他人", "echo": [{"type": "text", "text": "他人"}]})
    timeline = platform.get("/_sim/messages", params={"user": ALICE, "withSent": "1"}).json()
    assert [(e.get("from"), e.get("echo") or e["messages"][0]["text"]) for e in timeline] == [
        ("user", echo), (None, "受信: message")]
    assert timeline[0]["clientId"] == "c1" and timeline[0]["seq"] < timeline[1]["seq"]
    later = platform.get("/_sim/messages", params={"user": ALICE, "withSent": "1", "after": timeline[0]["seq"]}).json()
    assert [e["seq"] for e in later] == [timeline[1]["seq"]]
    plain = platform.get("/_sim/messages", params={"user": ALICE}).json()
    assert all("from" not in d for d in plain), "API clients of /_sim/messages see deliveries only"
    assert platform.post("/_sim/send", {"userId": ALICE, "type": "text", "text": "x", "echo": "x"}).status_code == 400
    assert platform.post("/_sim/send", {"userId": ALICE, "type": "nonsense", "echo": echo}).status_code == 400
    assert len(platform.get("/_sim/messages", params={"user": ALICE, "withSent": "1"}).json()) == 2, \
        "a refused event is not recorded"


def test_uploaded_images_are_served_back_to_the_page(platform: Platform) -> None:
    message_id = platform.http.post(platform.url + "/_sim/content", data=b"\xff\xd8jpeg",
                                    headers={"Content-Type": "image/jpeg"}, timeout=5).json()["messageId"]
    got = platform.get(f"/_sim/content/{message_id}")
    assert got.status_code == 200 and got.content == b"\xff\xd8jpeg" and got.headers["Content-Type"] == "image/jpeg"
    assert platform.get("/_sim/content/nope").status_code == 404


def test_clock_offset_moves_event_timestamps(platform: Platform, bot_webhook: dict[str, Any]) -> None:
    bot_webhook["events"].clear()
    assert platform.post("/_sim/clock", {"offsetMinutes": 130}).json() == {"clockOffsetMinutes": 130}
    assert platform.get("/_sim/info").json()["clockOffsetMinutes"] == 130
    platform.post("/_sim/send", {"userId": ALICE, "type": "text", "text": "後で"})
    ahead = bot_webhook["events"][-1].timestamp / 1000 - time.time()
    assert 130 * 60 - 5 < ahead < 130 * 60 + 5
    for bad in (-1, "30", 1.5, True, 7 * 24 * 60 + 1):
        assert platform.post("/_sim/clock", {"offsetMinutes": bad}).status_code == 400
    platform.post("/_sim/reset")
    assert platform.get("/_sim/info").json()["clockOffsetMinutes"] == 0
