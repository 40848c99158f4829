"""Webhook events as LINE sends them, for the simulator and for tests.

Every builder returns one event object in the full current shape of
``simulator/spec/webhook.yml`` (``mode``, ``webhookEventId`` as a ULID,
``deliveryContext``, ``quoteToken``/``markAsReadToken`` where LINE sends
them…), so a bot that works against these events works against LINE; a test
validates each builder against the spec's ``CallbackRequest``.

``body`` + ``sign`` + ``post`` then deliver them the way LINE does: compact
JSON, signed with the channel secret (base64 HMAC-SHA256 in
``x-line-signature``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import requests
from ulid import ULID

Event = dict[str, Any]

# A bot's own user id, used as ``destination`` when the caller has none.
DEFAULT_DESTINATION = "U" + "0" * 31 + "f"


def new_message_id() -> str:
    """A LINE-like message id: an 18-digit decimal string."""
    return str(10**17 + secrets.randbelow(9 * 10**17))


def new_reply_token() -> str:
    """A LINE-like reply token (32 hex characters).

    Only tokens issued by the fake platform are accepted by it: use
    ``PlatformState.issue_reply_token`` when the bot will reply.
    """
    return secrets.token_hex(16)


def _token() -> str:
    return secrets.token_urlsafe(24)


def user_source(user_id: str) -> dict[str, str]:
    return {"type": "user", "userId": user_id}


def group_source(group_id: str, user_id: str | None = None) -> dict[str, str]:
    source = {"type": "group", "groupId": group_id}
    if user_id:
        source["userId"] = user_id
    return source


def room_source(room_id: str, user_id: str | None = None) -> dict[str, str]:
    source = {"type": "room", "roomId": room_id}
    if user_id:
        source["userId"] = user_id
    return source


def _event(
    event_type: str,
    user_id: str,
    *,
    reply_token: str | None = None,
    source: dict[str, str] | None = None,
    mode: str = "active",
    timestamp: int | None = None,
    **fields: Any,
) -> Event:
    """The properties every webhook event shares, in LINE's order."""
    event: Event = {"type": event_type}
    event.update(fields)
    event["webhookEventId"] = str(ULID())
    event["deliveryContext"] = {"isRedelivery": False}
    event["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    event["source"] = source or user_source(user_id)
    if reply_token is not None:
        event["replyToken"] = reply_token
    event["mode"] = mode
    return event


def text(user_id: str, text: str, reply_token: str, **common: Any) -> Event:
    """A text message event (``common``: source, mode, timestamp)."""
    message = {
        "type": "text",
        "id": new_message_id(),
        "quoteToken": _token(),
        "markAsReadToken": _token(),
        "text": text,
    }
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def postback(
    user_id: str,
    data: str,
    reply_token: str,
    params: dict[str, str] | None = None,
    **common: Any,
) -> Event:
    """A postback event; ``params`` carries a datetimepicker's choice,
    e.g. ``{"date": "1980-04-01"}``, ``{"time": "10:00"}`` or
    ``{"datetime": "2026-05-01T10:00"}``."""
    content: dict[str, Any] = {"data": data}
    if params:
        content["params"] = dict(params)
    return _event("postback", user_id, reply_token=reply_token, postback=content, **common)


def follow(user_id: str, reply_token: str, *, is_unblocked: bool = False, **common: Any) -> Event:
    """Friend added (or, with ``is_unblocked``, unblocked)."""
    return _event("follow", user_id, reply_token=reply_token,
                  follow={"isUnblocked": is_unblocked}, **common)


def unfollow(user_id: str, **common: Any) -> Event:
    """Blocked: LINE gives no reply token."""
    return _event("unfollow", user_id, **common)


def location(
    user_id: str,
    lat: float,
    lng: float,
    reply_token: str,
    title: str | None = None,
    address: str | None = None,
    **common: Any,
) -> Event:
    """A location message (a pin the sender may have moved)."""
    message: dict[str, Any] = {"type": "location", "id": new_message_id(), "markAsReadToken": _token()}
    if title is not None:
        message["title"] = title
    if address is not None:
        message["address"] = address
    message["latitude"] = float(lat)
    message["longitude"] = float(lng)
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def image(
    user_id: str,
    message_id: str,
    reply_token: str,
    image_set: dict[str, Any] | None = None,
    **common: Any,
) -> Event:
    """An image message; its bytes are at ``GET /v2/bot/message/{id}/content``.

    ``image_set`` (``{"id", "index", "total"}``) marks one of several images
    sent at once.
    """
    message: dict[str, Any] = {
        "type": "image",
        "id": message_id,
        "quoteToken": _token(),
        "markAsReadToken": _token(),
        "contentProvider": {"type": "line"},
    }
    if image_set:
        message["imageSet"] = dict(image_set)
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def sticker(
    user_id: str,
    reply_token: str,
    package_id: str = "446",
    sticker_id: str = "1988",
    resource_type: str = "STATIC",
    keywords: list[str] | None = None,
    **common: Any,
) -> Event:
    """A sticker message (LINE sends ids and, experimentally, a few keywords; never the image)."""
    message: dict[str, Any] = {
        "type": "sticker",
        "id": new_message_id(),
        "quoteToken": _token(),
        "markAsReadToken": _token(),
        "packageId": package_id,
        "stickerId": sticker_id,
        "stickerResourceType": resource_type,
    }
    if keywords:
        message["keywords"] = list(keywords)[:15]
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def file(user_id: str, reply_token: str, file_name: str = "資料.pdf", file_size: int = 102_400,
         message_id: str | None = None, **common: Any) -> Event:
    """A file message (a PDF, or a photo sent 「ファイル」 rather than as an image)."""
    message: dict[str, Any] = {
        "type": "file",
        "id": message_id or new_message_id(),
        "markAsReadToken": _token(),
        "fileName": file_name,
        "fileSize": int(file_size),
    }
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def video(user_id: str, reply_token: str, duration_ms: int = 8_000, message_id: str | None = None,
          **common: Any) -> Event:
    """A video message; its bytes would be at ``GET /v2/bot/message/{id}/content``."""
    message: dict[str, Any] = {
        "type": "video",
        "id": message_id or new_message_id(),
        "quoteToken": _token(),
        "markAsReadToken": _token(),
        "duration": int(duration_ms),
        "contentProvider": {"type": "line"},
    }
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def audio(user_id: str, reply_token: str, duration_ms: int = 5_000, message_id: str | None = None,
          **common: Any) -> Event:
    """A voice message."""
    message: dict[str, Any] = {
        "type": "audio",
        "id": message_id or new_message_id(),
        "markAsReadToken": _token(),
        "duration": int(duration_ms),
        "contentProvider": {"type": "line"},
    }
    return _event("message", user_id, reply_token=reply_token, message=message, **common)


def redelivery(event: Event) -> Event:
    """The same event redelivered by LINE: same ``webhookEventId``,
    ``deliveryContext.isRedelivery`` true (the bot must dedupe on the id)."""
    again = copy.deepcopy(event)
    again["deliveryContext"] = {"isRedelivery": True}
    return again


def body(events: list[Event], destination: str = DEFAULT_DESTINATION) -> str:
    """The webhook request body: compact JSON, UTF-8 text left unescaped."""
    return json.dumps({"destination": destination, "events": events},
                      ensure_ascii=False, separators=(",", ":"))


def sign(body: str, channel_secret: str) -> str:
    """``x-line-signature``: base64 of HMAC-SHA256 of the raw body bytes."""
    digest = hmac.new(channel_secret.encode("utf-8"), body.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def post(
    webhook_url: str,
    channel_secret: str,
    events: list[Event],
    timeout: float = 10,
    *,
    destination: str = DEFAULT_DESTINATION,
) -> requests.Response:
    """Deliver ``events`` to the bot's webhook the way LINE does."""
    payload = body(events, destination)
    return requests.post(
        webhook_url,
        data=payload.encode("utf-8"),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "x-line-signature": sign(payload, channel_secret),
            "User-Agent": "LineBotWebhook/2.0",
        },
        timeout=timeout,
    )
