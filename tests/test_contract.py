"""The fake platform's contract: refuses what LINE refuses, accepts what the SDK sends.

Also checks the webhook event builders against LINE's webhook spec, and the
webhook signature against LINE's published test vector.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft4Validator
from linebot.v3.messaging import (
    ButtonsTemplate,
    CameraAction,
    CameraRollAction,
    ConfirmTemplate,
    DatetimePickerAction,
    FlexBox,
    FlexBubble,
    FlexButton,
    FlexCarousel,
    FlexImage,
    FlexMessage,
    FlexSeparator,
    FlexText,
    ImageMessage,
    LocationAction,
    MessageAction,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    TemplateMessage,
    TextMessage,
    URIAction,
)
from referencing import Registry
from referencing.jsonschema import DRAFT4

from simulator import events
from simulator.contract import (
    WEBHOOK_SPEC,
    ContractChecker,
    load_spec,
    schema_validator,
)

REPLY = "/v2/bot/message/reply"
USER = "U" + "0" * 31 + "1"


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker()


def reply_body(*messages: Any) -> dict[str, Any]:
    """Serialised exactly as the SDK sends it."""
    return ReplyMessageRequest(reply_token="t" * 32, messages=list(messages)).to_dict()


def raw_reply(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"replyToken": "t" * 32, "messages": list(messages)}


def quick_reply(*actions: Any) -> QuickReply:
    return QuickReply(items=[QuickReplyItem(action=a) for a in actions])


def text_with_quick_reply(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "text", "text": "選んでください",
            "quickReply": {"items": [{"type": "action", "action": a} for a in actions]}}


def sample_bubble() -> FlexBubble:
    return FlexBubble(
        hero=FlexImage(url="https://example.com/hero.png", size="full"),
        body=FlexBox(layout="vertical", contents=[
            FlexText(text="申請内容の確認", weight="bold", size="lg"),
            FlexSeparator(),
            FlexBox(layout="horizontal", contents=[
                FlexText(text="氏名", flex=2), FlexText(text="山田　太郎", flex=5, wrap=True),
            ]),
        ]),
        footer=FlexBox(layout="vertical", spacing="sm", contents=[
            FlexButton(style="primary", action=PostbackAction(label="送信", data="submit", display_text="送信")),
            FlexButton(action=PostbackAction(label="氏名を修正", data="edit=name")),
        ]),
    )


VALID_MESSAGES = {
    "plain text": TextMessage(text="こんにちは\n登録を始めます"),
    "text at the UTF-16 limit": TextMessage(text="😀" * 2500),
    "quick reply of every kind": TextMessage(text="選んでください", quick_reply=quick_reply(
        MessageAction(label="同意する", text="同意する"),
        PostbackAction(label="同意しない", data="consent=no", display_text="同意しない"),
        DatetimePickerAction(label="生年月日を選ぶ", data="step=birth", mode="date",
                             initial="1980-04-01", max="2008-04-01", min="1926-01-01"),
        CameraAction(label="カメラ"),
        CameraRollAction(label="カメラロール"),
        LocationAction(label="位置情報を送る"),
        URIAction(label="説明を見る", uri="https://example.com/help"),
    )),
    "13 quick reply items": TextMessage(text="都道府県", quick_reply=quick_reply(
        *[MessageAction(label=f"県{i}", text=f"県{i}") for i in range(13)])),
    "20-character label": TextMessage(text="x", quick_reply=quick_reply(
        MessageAction(label="あ" * 20, text="あ"))),
    "buttons template": TemplateMessage(alt_text="承認しますか", template=ButtonsTemplate(
        title="申請 #12", text="山田　太郎さんの申請です",
        actions=[PostbackAction(label="承認", data="approve=12"),
                 PostbackAction(label="差し戻し", data="return=12"),
                 MessageAction(label="詳細", text="/show 12")])),
    "confirm template": TemplateMessage(alt_text="同意しますか", template=ConfirmTemplate(
        text="委嘱条件に同意しますか", actions=[MessageAction(label="同意する", text="同意する"),
                                               MessageAction(label="同意しない", text="同意しない")])),
    "flex bubble": FlexMessage(alt_text="申請内容の確認", contents=sample_bubble()),
    "flex carousel": FlexMessage(alt_text="一覧", contents=FlexCarousel(contents=[sample_bubble(), sample_bubble()])),
    "image": ImageMessage(original_content_url="https://example.com/a.jpg",
                          preview_image_url="https://example.com/a-preview.jpg"),
}


@pytest.mark.parametrize("message", VALID_MESSAGES.values(), ids=VALID_MESSAGES.keys())
def test_messages_built_with_the_sdk_pass(checker: ContractChecker, message: Any) -> None:
    assert checker.check("POST", REPLY, reply_body(message)) == []


def test_five_sdk_messages_pass_together(checker: ContractChecker) -> None:
    body = reply_body(*list(VALID_MESSAGES.values())[:5])
    assert checker.check("POST", REPLY, body) == []


def test_text_message_without_text_is_refused(checker: ContractChecker) -> None:
    assert checker.check("POST", REPLY, raw_reply({"type": "text"})) == ["messages[0].text: must be specified"]


def test_unknown_message_type_is_refused(checker: ContractChecker) -> None:
    [violation] = checker.check("POST", REPLY, raw_reply({"type": "bogus"}))
    assert violation.startswith("messages[0].type: unknown Message type 'bogus'")


def test_flex_box_without_layout_is_refused(checker: ContractChecker) -> None:
    body = reply_body(FlexMessage(alt_text="x", contents=sample_bubble()))
    del body["messages"][0]["contents"]["body"]["layout"]
    assert checker.check("POST", REPLY, body) == ["messages[0].contents.body.layout: must be specified"]


def test_text_is_limited_in_utf16_code_units(checker: ContractChecker) -> None:
    # 2501 emoji are 2501 code points but 5002 UTF-16 code units.
    [violation] = checker.check("POST", REPLY, raw_reply({"type": "text", "text": "😀" * 2501}))
    assert violation.startswith("messages[0].text: must be at most 5000")
    assert "5002" in violation


def test_fourteen_quick_reply_items_are_refused(checker: ContractChecker) -> None:
    action = {"type": "message", "label": "はい", "text": "はい"}
    body = raw_reply(text_with_quick_reply(*[action] * 14))
    assert checker.check("POST", REPLY, body) == ["messages[0].quickReply.items: must have at most 13 items (got 14)"]


def test_a_21_character_label_is_refused(checker: ContractChecker) -> None:
    body = raw_reply(text_with_quick_reply({"type": "message", "label": "あ" * 21, "text": "あ"}))
    assert checker.check("POST", REPLY, body) == [
        "messages[0].quickReply.items[0].action.label: must be at most 20 characters (got 21)"]


def test_301_characters_of_postback_data_are_refused(checker: ContractChecker) -> None:
    body = raw_reply(text_with_quick_reply({"type": "postback", "label": "次へ", "data": "d" * 301}))
    assert checker.check("POST", REPLY, body) == [
        "messages[0].quickReply.items[0].action.data: must be at most 300 characters (got 301)"]


def test_six_messages_are_refused(checker: ContractChecker) -> None:
    body = raw_reply(*[{"type": "text", "text": "x"}] * 6)
    assert checker.check("POST", REPLY, body) == ["messages: must have at most 5 items (got 6)"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (text_with_quick_reply({"type": "postback", "label": "次へ", "data": "x", "displayText": "あ" * 301}),
         "messages[0].quickReply.items[0].action.displayText: must be at most 300 characters (got 301)"),
        (text_with_quick_reply({"type": "richmenuswitch", "label": "切替", "data": "x", "richMenuAliasId": "a"}),
         "messages[0].quickReply.items[0].action.type: must be one of"),
        (text_with_quick_reply({"type": "message", "text": "ラベルなし"}),
         "messages[0].quickReply.items[0].action.label: must be specified"),
        (text_with_quick_reply({"type": "postback", "label": "次へ"}),
         "messages[0].quickReply.items[0].action.data: must be specified"),
        ({"type": "template", "altText": "あ" * 1501,
          "template": {"type": "confirm", "text": "?", "actions": [
              {"type": "message", "label": "はい", "text": "はい"},
              {"type": "message", "label": "いいえ", "text": "いいえ"}]}},
         "messages[0].altText: must be at most 1500 characters (got 1501)"),
        ({"type": "template", "altText": "a", "template": {
            "type": "buttons", "text": "あ" * 161, "actions": [{"type": "message", "label": "a", "text": "a"}]}},
         "messages[0].template.text: must be at most 160 characters (got 161)"),
        ({"type": "template", "altText": "a", "template": {
            "type": "buttons", "title": "申請", "text": "あ" * 61,
            "actions": [{"type": "message", "label": "a", "text": "a"}]}},
         "messages[0].template.text: must be at most 60 characters when title is set (got 61)"),
        ({"type": "template", "altText": "a", "template": {
            "type": "buttons", "text": "写真", "actions": [{"type": "camera", "label": "カメラ"}]}},
         "messages[0].template.actions[0].type: must be one of"),
        ({"type": "flex", "altText": "a", "contents": {"type": "bubble", "body": {
            "type": "box", "layout": "vertical", "contents": [{"type": "button"}]}}},
         "messages[0].contents.body.contents[0].action: must be specified"),
        ({"type": "text", "text": ""}, "messages[0].text: may not be empty"),
    ],
    ids=["displayText 301", "richmenuswitch in quick reply", "quick reply without label",
         "postback without data", "altText 1501", "buttons text 161", "buttons text 61 with title",
         "camera in a template", "flex button without action", "empty text"],
)
def test_documented_limits_are_enforced(checker: ContractChecker, message: dict[str, Any], expected: str) -> None:
    violations = checker.check("POST", REPLY, raw_reply(message))
    assert len(violations) == 1, violations
    assert violations[0].startswith(expected)


def test_multicast_to_more_than_500_users_is_refused(checker: ContractChecker) -> None:
    body = {"to": [USER] * 501, "messages": [{"type": "text", "text": "お知らせ"}]}
    assert checker.check("POST", "/v2/bot/message/multicast", body) == ["to: must have at most 500 items (got 501)"]


def test_push_to_a_malformed_id_is_refused(checker: ContractChecker) -> None:
    body = {"to": "someone", "messages": [{"type": "text", "text": "x"}]}
    [violation] = checker.check("POST", "/v2/bot/message/push", body)
    assert violation.startswith("to: must match")


def test_rich_menu_and_loading_bodies_are_checked(checker: ContractChecker) -> None:
    menu = {"size": {"width": 2500, "height": 843}, "selected": True, "name": "main", "chatBarText": "メニュー",
            "areas": [{"bounds": {"x": 0, "y": 0, "width": 1250, "height": 843},
                       "action": {"type": "postback", "data": "menu=checkin", "label": "チェックイン"}}]}
    assert checker.check("POST", "/v2/bot/richmenu", menu) == []
    assert checker.check("POST", "/v2/bot/richmenu", {**menu, "chatBarText": "あ" * 15}) == [
        "chatBarText: must be at most 14 characters (got 15)"]
    assert checker.check("POST", "/v2/bot/chat/loading/start", {"chatId": USER, "loadingSeconds": 5}) == []
    assert checker.check("POST", "/v2/bot/chat/loading/start", {"chatId": USER, "loadingSeconds": 7}) != []


def test_endpoints_without_a_body_schema_are_not_checked(checker: ContractChecker) -> None:
    assert checker.check("GET", "/v2/bot/profile/" + USER, None) == []
    assert checker.check("POST", REPLY, None) == ["the request body is required"]


def test_the_rewritten_schema_refuses_on_its_own() -> None:
    """The pinned ``oneOf`` is correct for any Draft 4 validator, not just
    thanks to the checker's discriminator short-cut."""
    doc = load_spec()
    registry = Registry().with_resource("urn:spec", DRAFT4.create_resource(doc))
    plain = Draft4Validator({"$ref": "urn:spec#/components/schemas/Message"}, registry=registry)
    assert not plain.is_valid({"type": "text"})
    assert not plain.is_valid({"type": "bogus"})
    assert plain.is_valid({"type": "text", "text": "x"})
    assert plain.is_valid({"type": "sticker", "packageId": "1", "stickerId": "1"})


def test_the_spec_is_parsed_once() -> None:
    assert load_spec() is load_spec()
    assert ContractChecker().spec_path == ContractChecker().spec_path


# --- webhook events -------------------------------------------------------------

TOKEN = "r" * 32


def all_builders() -> dict[str, dict[str, Any]]:
    return {
        "text": events.text(USER, "登録", TOKEN),
        "postback": events.postback(USER, "step=birth", TOKEN, params={"date": "1980-04-01"}),
        "follow": events.follow(USER, TOKEN),
        "unblocked follow": events.follow(USER, TOKEN, is_unblocked=True),
        "unfollow": events.unfollow(USER),
        "location": events.location(USER, 35.681236, 139.767125, TOKEN, title="東京駅", address="東京都千代田区"),
        "image": events.image(USER, events.new_message_id(), TOKEN),
        "image in a set": events.image(USER, "1", TOKEN, image_set={"id": "set1", "index": 1, "total": 2}),
        "group text": events.text(USER, "x", TOKEN, source=events.group_source("C" + "a" * 32, USER)),
        "standby": events.text(USER, "x", TOKEN, mode="standby"),
        "redelivery": events.redelivery(events.text(USER, "x", TOKEN)),
    }


@pytest.mark.parametrize("name", all_builders().keys())
def test_every_event_builder_matches_the_webhook_spec(name: str) -> None:
    event = all_builders()[name]
    request = {"destination": events.DEFAULT_DESTINATION, "events": [event]}
    assert schema_validator("CallbackRequest", WEBHOOK_SPEC).violations(request) == []


def test_the_webhook_spec_check_has_teeth() -> None:
    event = events.text(USER, "x", TOKEN)
    del event["message"]["quoteToken"]
    del event["mode"]
    found = {str(v) for v in schema_validator("CallbackRequest", WEBHOOK_SPEC).violations(
        {"destination": events.DEFAULT_DESTINATION, "events": [event]})}
    assert found == {"events[0].message.quoteToken: must be specified", "events[0].mode: must be specified"}


def test_events_carry_what_the_bot_relies_on() -> None:
    event = events.text(USER, "登録", TOKEN)
    assert event["replyToken"] == TOKEN
    assert event["source"] == {"type": "user", "userId": USER}
    assert event["deliveryContext"] == {"isRedelivery": False}
    assert len(event["webhookEventId"]) == 26  # a ULID
    again = events.redelivery(event)
    assert again["webhookEventId"] == event["webhookEventId"]
    assert again["deliveryContext"] == {"isRedelivery": True}
    assert event["deliveryContext"] == {"isRedelivery": False}
    assert "replyToken" not in events.unfollow(USER)


def test_signature_matches_lines_test_vector() -> None:
    body = events.body([], "U8e742f61d673b39c7fff3cecb7536ef0")
    assert body == '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    assert events.sign(body, "8c570fa6dd201bb328f1c1eac23a96d8") == "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="
