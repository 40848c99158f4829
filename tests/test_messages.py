"""The reply builders (built without pydantic's validation) equal what validation builds,
and keep LINE's limits."""
from __future__ import annotations

from linebot.v3.messaging import MessageAction, QuickReply, QuickReplyItem, TextMessage

from conversations.kit import messages as msg
from conversations.kit.wire import wire


def _validated(body: str, choices: list[str | tuple[str, str]], extra: list[QuickReplyItem]) -> TextMessage:
    items = list(extra)
    for choice in choices:
        lab, sent = (choice, choice) if isinstance(choice, str) else choice
        items.append(QuickReplyItem(action=MessageAction(label=msg.label(lab), text=sent)))
    quick = QuickReply(items=items[: msg.MAX_QUICK_REPLY_ITEMS]) if items else None
    return TextMessage(text=msg.clip(body), quickReply=quick)


def test_text_bubbles_equal_the_validated_models():
    picker = msg.date_picker_item("日付を選ぶ", "pick", "2026-12-01", "2026-11-01", "2027-03-31")
    cases: list[tuple[str, list[str | tuple[str, str]], list[QuickReplyItem]]] = [
        ("お名前を教えてください。", [], []),
        ("はい／いいえ", ["はい", "いいえ"], []),
        ("選んでください", [("とても長いラベルはLINEの二十文字で切られます", "長い")], []),
        ("十四個", [f"{i}番" for i in range(14)], []),
        ("日付", ["戻る"], [picker]),
        ("長文" * 3000, ["はい"], []),
    ]
    for body, choices, extra in cases:
        built = msg.text(body, choices, extra)
        expected = _validated(body, choices, extra)
        assert built == expected
        assert wire(built) == wire(expected) == expected.to_dict()
    assert len(msg.text("x", [str(i) for i in range(20)]).quick_reply.items) == msg.MAX_QUICK_REPLY_ITEMS


def test_choices_can_be_attached_later():
    bubble = msg.text("確認してください")
    assert bubble.quick_reply is None
    msg.with_quick_reply([bubble], ["はい"])
    assert wire(bubble)["quickReply"]["items"][0]["action"] == {"type": "message", "label": "はい", "text": "はい"}
