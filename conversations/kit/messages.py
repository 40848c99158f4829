"""Builders for the LINE messages flows reply with (line-bot-sdk v3 models).

LINE's limits live here so no flow can break them: ≤ 13 quick-reply items,
labels ≤ 20 characters, text ≤ 5,000 UTF-16 units. Quick replies show only
on LINE for iOS/Android, so every choice is a *message* action: tapping it
sends the same words the user could type on LINE for PC.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from linebot.v3.messaging import (
    DatetimePickerAction,
    Message,
    MessageAction,
    QuickReply,
    QuickReplyItem,
    TextMessage,
)

from conversations.kit.wire import built

MAX_QUICK_REPLY_ITEMS = 13
MAX_LABEL = 20
MAX_TEXT_UTF16 = 5000

Choice = str | tuple[str, str]  # "word" or (label, text sent)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit_utf16: int = MAX_TEXT_UTF16) -> str:
    """Cut text to LINE's limit, marking the cut (never splits a surrogate pair)."""
    if utf16_len(text) <= limit_utf16:
        return text
    out, used = [], 0
    for ch in text:
        n = utf16_len(ch)
        if used + n > limit_utf16 - 1:
            break
        out.append(ch)
        used += n
    return "".join(out) + "…"


def label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


# The bubbles every answer sends are built without pydantic's validation (``wire.built``, by
# field name): what validation would check is made true here (a ``str`` text clipped to
# LINE's length, labels clipped, at most 13 items), and validation re-copied each nested
# model at every level — three to four models a reply, on every event. What is sent is
# still checked: the fake platform validates every message against LINE's OpenAPI spec in
# the tests, and ``tests/test_messages.py`` compares these with the validated models.
def quick_reply(choices: Iterable[Choice], extra: Sequence[QuickReplyItem] = ()) -> QuickReply | None:
    items: list[QuickReplyItem] = list(extra)
    for choice in choices:
        lab, sent = (choice, choice) if isinstance(choice, str) else choice
        items.append(built(QuickReplyItem, action=built(MessageAction, label=label(str(lab)), text=str(sent))))
    if not items:
        return None
    return built(QuickReply, items=items[:MAX_QUICK_REPLY_ITEMS])


def text(body: str, choices: Iterable[Choice] = (), extra: Sequence[QuickReplyItem] = ()) -> TextMessage:
    """A text bubble, optionally with quick-reply choices under it."""
    return built(TextMessage, text=clip(str(body)), quick_reply=quick_reply(choices, extra))


def date_picker_item(label_text: str, data: str, initial: str, min_: str, max_: str) -> QuickReplyItem:
    return QuickReplyItem(
        action=DatetimePickerAction(label=label(label_text), data=data, mode="date", initial=initial, min=min_, max=max_)
    )


def with_quick_reply(messages: list[Message], choices: Iterable[Choice]) -> list[Message]:
    """Attach choices to the last message when it is text and has none."""
    if messages and isinstance(messages[-1], TextMessage) and messages[-1].quick_reply is None:
        messages[-1].quick_reply = quick_reply(choices)
    return messages
