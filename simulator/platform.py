"""A local fake of the LINE platform: Messaging API, data API and a chat page.

The bot is pointed at this server for both ``LINE_API_BASE_URL`` and
``LINE_DATA_API_BASE_URL``; it answers the way LINE does (status codes,
``{"message", "details"}`` error bodies, single-use expiring reply tokens,
``X-Line-Retry-Key`` deduplication) and checks every request body against
LINE's OpenAPI contract (:mod:`simulator.contract`), so a message LINE would
refuse is refused here too — and recorded in ``state.violations`` so a test
suite can fail the test that caused it.

It also plays LINE towards the bot: ``POST /_sim/send`` builds a webhook event
(:mod:`simulator.events`), signs it and posts it to the bot, which is what the
chat page at ``/`` uses. Everything under ``/_sim`` is simulator control and
does not exist on LINE.

State lives in ``app.extensions["line_platform"]`` (:class:`PlatformState`),
guarded by one lock because the server runs threaded.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator import events
from simulator.contract import ContractChecker, Violation

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The Japanese font the bot ships for its documents; the chat page falls back
# to it so Japanese renders on machines without CJK fonts (CI's chromium).
FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
EXTENSION_KEY = "line_platform"

USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
RETRY_KEY_TTL = 24 * 60 * 60  # LINE remembers an accepted retry key for 24 h
RICH_MENU_IMAGE_MAX = 1024 * 1024  # 1 MB
RICH_MENU_IMAGE_TYPES = ("image/png", "image/jpeg")
# Sent messages LINE returns a quoteToken for (they can be quoted later).
QUOTABLE_TYPES = {"text", "textV2", "sticker", "image", "video"}

# Used to make up a stable Japanese display name for users nobody registered.
_FAMILY_NAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"]
_GIVEN_NAMES = ["太郎", "花子", "健一", "美咲", "大輔", "陽子", "翔太", "恵子", "誠", "由美", "拓也", "真理"]


LogSource = Callable[[str, int], tuple[list[dict[str, Any]], int]]


@dataclass
class Failure:
    """An injected failure: the next ``remaining`` requests whose path matches
    ``path`` (``fnmatch`` pattern) wait ``delay`` seconds, then answer
    ``status`` with ``body`` before anything is delivered.

    A ``status`` below 400 only delays: the request then succeeds normally,
    which simulates "LINE delivered it but the client timed out".
    """

    path: str
    status: int
    remaining: int
    body: dict[str, Any] | None = None
    delay: float = 0.0


class PlatformState:
    """Everything the fake platform remembers; every method is thread-safe."""

    def __init__(
        self,
        *,
        channel_access_token: str,
        channel_secret: str,
        webhook_url: str | None = None,
        check_contract: bool = True,
        reply_token_ttl: float = 60.0,
        bot_user_id: str | None = None,
        bot_basic_id: str = "@119sim",
    ) -> None:
        self.channel_access_token = channel_access_token
        self.channel_secret = channel_secret
        self.webhook_url = webhook_url
        self.reply_token_ttl = reply_token_ttl
        self.checker: ContractChecker | None = ContractChecker() if check_contract else None
        self.bot_user_id = bot_user_id or "U" + hashlib.sha256(channel_secret.encode()).hexdigest()[:32]
        self.bot_basic_id = bot_basic_id
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._seq = 0  # never reset, so pollers using ?after= stay correct
        # The bot's log lines for the chat page's ops panel: set by whoever runs
        # the bot next to this platform (``make run``, the tests), since only
        # they know where its logs are. ``(user_id, after) -> (entries, next)``.
        self.log_source: LogSource | None = None
        self._clear()

    def _clear(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.user_events: list[dict[str, Any]] = []  # what users sent, for the chat page's transcript
        # Seconds added to the timestamps of events sent from here: the page's
        # clock control lets a by-hand demo stay two hours at a dispatch in a
        # minute (the bot times check-in/out by LINE's event timestamp).
        self.clock_offset = 0.0
        self.violations: list[dict[str, Any]] = []
        self._failures: list[Failure] = []
        self._reply_tokens: dict[str, tuple[str, float]] = {}
        self._retry_keys: dict[str, tuple[str, float, list[dict[str, str]]]] = {}
        self._contents: dict[str, tuple[bytes, str]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._blocked: set[str] = set()
        self.rich_menus: dict[str, dict[str, Any]] = {}
        self._rich_menu_images: dict[str, tuple[bytes, str]] = {}
        self.default_rich_menu: str | None = None
        self.user_rich_menus: dict[str, str] = {}

    def reset(self) -> None:
        """Forget everything (deliveries, violations, failures, tokens, retry
        keys, contents, users, rich menus); sequence numbers keep growing."""
        with self.lock:
            self._clear()
            self._changed.notify_all()

    # -- reply tokens -------------------------------------------------------

    def issue_reply_token(self, user_id: str) -> str:
        """A reply token for ``user_id``, valid once for ``reply_token_ttl`` s."""
        token = events.new_reply_token()
        with self.lock:
            self._reply_tokens[token] = (user_id, time.monotonic())
        return token

    def peek_reply_token(self, token: str) -> str | None:
        """The user a live token belongs to, without using it up."""
        with self.lock:
            entry = self._reply_tokens.get(token)
            if entry is None:
                return None
            user_id, issued = entry
            if time.monotonic() - issued > self.reply_token_ttl:
                del self._reply_tokens[token]
                return None
            return user_id

    def use_reply_token(self, token: str) -> str | None:
        """Consume a token; ``None`` when it is unknown, used or expired."""
        with self.lock:
            user_id = self.peek_reply_token(token)
            if user_id is not None:
                del self._reply_tokens[token]
            return user_id

    # -- failure injection --------------------------------------------------

    def fail(self, path: str, status: int, count: int = 1, body: dict[str, Any] | None = None,
             delay: float = 0) -> None:
        """Make the next ``count`` requests to ``path`` fail (see :class:`Failure`)."""
        with self.lock:
            self._failures.append(Failure(path, int(status), int(count), body, float(delay)))

    def take_failure(self, path: str) -> Failure | None:
        with self.lock:
            for failure in self._failures:
                if failure.remaining > 0 and fnmatch.fnmatchcase(path, failure.path):
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self._failures.remove(failure)
                    return failure
            return None

    # -- retry keys ---------------------------------------------------------

    def accepted_retry_key(self, key: str) -> tuple[str, list[dict[str, str]]] | None:
        """``(request id, sent messages)`` if ``key`` was accepted in the last 24 h."""
        with self.lock:
            entry = self._retry_keys.get(key.lower())
            if entry is None or time.time() - entry[1] > RETRY_KEY_TTL:
                return None
            return entry[0], entry[2]

    def accept_retry_key(self, key: str, request_id: str, sent: list[dict[str, str]]) -> None:
        with self.lock:
            self._retry_keys[key.lower()] = (request_id, time.time(), sent)

    # -- deliveries ---------------------------------------------------------

    def record_delivery(self, to: str, via: str, messages: list[dict[str, Any]],
                        retry_key: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            self._seq += 1
            delivery = {
                "seq": self._seq,
                "to": to,
                "via": via,
                "messages": messages,
                "retryKey": retry_key,
                "requestId": request_id,
                "at": time.time(),
            }
            self.deliveries.append(delivery)
            self._changed.notify_all()
            return delivery

    def deliveries_for(self, user_id: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.deliveries
                    if d["seq"] > after and (user_id is None or d["to"] == user_id)]

    def record_user_event(self, user_id: str, echo: list[dict[str, Any]], client_id: str | None) -> dict[str, Any]:
        """Remember what a user sent, as the chat page shows it (``echo``), in
        the same sequence as deliveries, so a reloaded page or a persona
        switched back to shows both sides of the conversation in order."""
        with self.lock:
            self._seq += 1
            entry = {"seq": self._seq, "from": "user", "to": user_id, "echo": echo,
                     "clientId": client_id, "at": time.time()}
            self.user_events.append(entry)
            return entry

    def timeline_for(self, user_id: str, after: int = 0) -> list[dict[str, Any]]:
        """Deliveries to ``user_id`` and what they sent, by sequence number."""
        with self.lock:
            sent = [e for e in self.user_events if e["seq"] > after and e["to"] == user_id]
            return sorted(self.deliveries_for(user_id, after) + sent, key=lambda e: e["seq"])

    def activity(self) -> dict[str, dict[str, int]]:
        """Per user: how many deliveries, and the last one's sequence number
        (the chat page badges the personas that got something new)."""
        with self.lock:
            seen: dict[str, dict[str, int]] = {}
            for d in self.deliveries:
                entry = seen.setdefault(d["to"], {"count": 0, "last": 0})
                entry["count"] += 1
                entry["last"] = d["seq"]
            return seen

    def messages_for(self, user_id: str) -> list[dict[str, Any]]:
        """Every message delivered to ``user_id``, oldest first."""
        return [m for d in self.deliveries_for(user_id) for m in d["messages"]]

    def texts_for(self, user_id: str) -> list[str]:
        """One string per delivered message: the text, or the alt text of a
        template/Flex/imagemap message, or ``[type]`` for media."""
        return [message_text(m) for m in self.messages_for(user_id)]

    def wait_for(self, user_id: str, after: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until something is delivered to ``user_id`` after ``after``
        (e.g. a push sent by a background worker); returns those deliveries."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.deliveries_for(user_id, after)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    def record_violation(self, method: str, path: str, violations: list[Violation], body: Any) -> None:
        with self.lock:
            self.violations.append({
                "method": method,
                "path": path,
                "violations": [str(v) for v in violations],
                "body": body,
                "at": time.time(),
            })

    # -- contents and users -------------------------------------------------

    def add_content(self, data: bytes, content_type: str, message_id: str | None = None) -> str:
        """Store bytes the bot can fetch as a user's message content."""
        message_id = message_id or events.new_message_id()
        with self.lock:
            self._contents[message_id] = (bytes(data), content_type)
        return message_id

    def content(self, message_id: str) -> tuple[bytes, str] | None:
        with self.lock:
            return self._contents.get(message_id)

    def set_user(self, user_id: str, display_name: str, **profile: Any) -> None:
        with self.lock:
            self._users[user_id] = {"displayName": display_name, **profile}

    def profile(self, user_id: str) -> dict[str, Any] | None:
        """LINE's profile for a user; ``None`` once the user blocked the bot."""
        with self.lock:
            if user_id in self._blocked:
                return None
            known = self._users.get(user_id) or {"displayName": generated_name(user_id)}
            return {"userId": user_id, "language": "ja", **known}

    def set_blocked(self, user_id: str, blocked: bool) -> None:
        with self.lock:
            (self._blocked.add if blocked else self._blocked.discard)(user_id)

    # -- rich menus ---------------------------------------------------------

    def rich_menu_image(self, rich_menu_id: str) -> tuple[bytes, str] | None:
        with self.lock:
            return self._rich_menu_images.get(rich_menu_id)

    def set_rich_menu_image(self, rich_menu_id: str, data: bytes, content_type: str) -> None:
        with self.lock:
            self._rich_menu_images[rich_menu_id] = (data, content_type)

    def rich_menu_for(self, user_id: str) -> dict[str, Any] | None:
        """What the user sees: their linked menu, else the default one."""
        with self.lock:
            menu_id = self.user_rich_menus.get(user_id) or self.default_rich_menu
            return self.rich_menus.get(menu_id) if menu_id else None

    # -- acting as LINE towards the bot -------------------------------------

    def set_clock_offset(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset = float(seconds)

    def now_ms(self) -> int:
        """LINE's clock for event timestamps: real time plus the offset."""
        return int((time.time() + self.clock_offset) * 1000)

    def build_event(self, user_id: str, kind: str, **fields: Any) -> events.Event:
        """A webhook event for ``kind`` (text, postback, follow, unfollow,
        location, image), with a reply token from this platform."""
        if kind not in ("text", "postback", "follow", "unfollow", "location", "image"):
            raise ValueError(f"unknown event type {kind!r}")
        token = None if kind == "unfollow" else self.issue_reply_token(user_id)
        at = self.now_ms()
        if kind == "text":
            return events.text(user_id, str(fields["text"]), token, timestamp=at)
        if kind == "postback":
            return events.postback(user_id, str(fields["data"]), token, fields.get("params") or None, timestamp=at)
        if kind == "follow":
            return events.follow(user_id, token, is_unblocked=bool(fields.get("isUnblocked", False)), timestamp=at)
        if kind == "unfollow":
            return events.unfollow(user_id, timestamp=at)
        if kind == "location":
            return events.location(
                user_id, float(fields["latitude"]), float(fields["longitude"]), token,
                title=fields.get("title"), address=fields.get("address"), timestamp=at,
            )
        return events.image(user_id, str(fields["messageId"]), token, fields.get("imageSet"), timestamp=at)

    def send(self, user_id: str, kind: str, *, timeout: float = 10, echo: list[dict[str, Any]] | None = None,
             client_id: str | None = None, **fields: Any) -> requests.Response:
        """Build, sign and post one event to the bot, as LINE would; ``echo``
        (how the chat page shows it) is recorded first, so it precedes the answer."""
        if not self.webhook_url:
            raise RuntimeError("the platform has no webhook_url to send events to")
        event = self.build_event(user_id, kind, **fields)
        if echo:
            self.record_user_event(user_id, echo, client_id)
        if kind == "follow":
            self.set_blocked(user_id, False)
        elif kind == "unfollow":
            self.set_blocked(user_id, True)
        return events.post(self.webhook_url, self.channel_secret, [event], timeout=timeout,
                           destination=self.bot_user_id)


def message_text(message: dict[str, Any]) -> str:
    """The text a person reads first in a message (alt text for cards)."""
    kind = message.get("type")
    if kind in ("text", "textV2"):
        return str(message.get("text", ""))
    if kind in ("template", "flex", "imagemap"):
        return str(message.get("altText", ""))
    if kind == "location":
        return str(message.get("title", ""))
    return f"[{kind}]"


def generated_name(user_id: str) -> str:
    """A stable made-up Japanese name, so profiles look real in the chat."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return _FAMILY_NAMES[digest[0] % len(_FAMILY_NAMES)] + " " + _GIVEN_NAMES[digest[1] % len(_GIVEN_NAMES)]


# ---------------------------------------------------------------------------
# HTTP: helpers
# ---------------------------------------------------------------------------

def _state() -> PlatformState:
    return current_app.extensions[EXTENSION_KEY]


def line_error(status: int, message: str, details: list[dict[str, str]] | None = None,
               **extra: Any) -> Response:
    """An error shaped like LINE's: ``{"message", "details": [...]}``."""
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    return response


def _json_body() -> Any:
    """The request's JSON body (parsed once per request); raises ValueError."""
    if "json_body" not in g:
        raw = request.get_data()
        g.json_body = json.loads(raw) if raw else None
    return g.json_body


def _sent_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    sent = []
    for message in messages:
        item = {"id": events.new_message_id()}
        if message.get("type") in QUOTABLE_TYPES:
            item["quoteToken"] = secrets.token_urlsafe(24)
        sent.append(item)
    return sent


def _messages(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return messages if isinstance(messages, list) else []


# ---------------------------------------------------------------------------
# HTTP: the Messaging API (api.line.me and api-data.line.me paths)
# ---------------------------------------------------------------------------

api = Blueprint("line_api", __name__, url_prefix="/v2/bot")


@api.before_request
def _gate() -> Response | None:
    """What LINE does before an endpoint runs: auth, then (here) injected
    failures, then the request-body contract."""
    state = _state()
    g.request_id = str(uuid.uuid4())
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return line_error(401, "Authorization header required. "
                               "Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'")
    if auth[len("Bearer "):] != state.channel_access_token:
        return line_error(401, "Authentication failed. Confirm that the access token "
                               "in the authorization header is valid.")

    failure = state.take_failure(request.path)
    if failure is not None:
        if failure.delay:
            time.sleep(failure.delay)
        if failure.status >= 400:
            response = jsonify(failure.body or {"message": "Injected failure"})
            response.status_code = failure.status
            return response

    if state.checker is not None and state.checker.schema_for(request.method, request.path):
        try:
            body = _json_body()
        except ValueError:
            problem = [Violation("", "The request body could not be parsed as JSON")]
            state.record_violation(request.method, request.path, problem, request.get_data(as_text=True))
            return line_error(400, "The request body could not be parsed as JSON")
        found = state.checker.violations(request.method, request.path, body)
        if found:
            state.record_violation(request.method, request.path, found, body)
            return line_error(400, f"The request body has {len(found)} error(s)",
                              [v.as_detail() for v in found])
    return None


@api.after_request
def _request_id(response: Response) -> Response:
    response.headers["x-line-request-id"] = g.get("request_id") or str(uuid.uuid4())
    return response


def _body_or_error() -> tuple[Any, Response | None]:
    try:
        return _json_body(), None
    except ValueError:
        return None, line_error(400, "The request body could not be parsed as JSON")


def _retry_key() -> tuple[str | None, Response | None]:
    """The X-Line-Retry-Key header, validated (it must be a UUID)."""
    key = request.headers.get("X-Line-Retry-Key")
    if key is None:
        return None, None
    try:
        uuid.UUID(key)
    except ValueError:
        problem = Violation("X-Line-Retry-Key", "must be a UUID")
        _state().record_violation(request.method, request.path, [problem], key)
        return None, line_error(400, "The value for the 'X-Line-Retry-Key' header is invalid",
                                [problem.as_detail()])
    return key, None


def _already_accepted(key: str | None) -> Response | None:
    """409 for a retry key LINE already accepted: nothing is sent twice."""
    accepted = _state().accepted_retry_key(key) if key else None
    if accepted is None:
        return None
    request_id, sent = accepted
    response = line_error(409, "The retry key is already accepted", sentMessages=sent)
    response.headers["x-line-accepted-request-id"] = request_id
    return response


@api.post("/message/reply")
def reply_message() -> Response:
    state = _state()
    body, error = _body_or_error()
    if error:
        return error
    token = body.get("replyToken") if isinstance(body, dict) else None
    user_id = state.use_reply_token(token) if isinstance(token, str) else None
    if user_id is None:
        return line_error(400, "Invalid reply token")
    messages = _messages(body)
    state.record_delivery(user_id, "reply", messages, request_id=g.request_id)
    return jsonify({"sentMessages": _sent_messages(messages)})


@api.post("/message/push")
def push_message() -> Response:
    state = _state()
    body, error = _body_or_error()
    if error:
        return error
    key, error = _retry_key()
    if error:
        return error
    with state.lock:  # check-and-accept the key atomically
        conflict = _already_accepted(key)
        if conflict:
            return conflict
        to = body.get("to") if isinstance(body, dict) else None
        if not isinstance(to, str):
            return line_error(400, "The property, 'to', in the request body is invalid")
        messages = _messages(body)
        sent = _sent_messages(messages)
        state.record_delivery(to, "push", messages, key, g.request_id)
        if key:
            state.accept_retry_key(key, g.request_id, sent)
    return jsonify({"sentMessages": sent})


@api.post("/message/multicast")
def multicast() -> Response:
    state = _state()
    body, error = _body_or_error()
    if error:
        return error
    key, error = _retry_key()
    if error:
        return error
    with state.lock:
        conflict = _already_accepted(key)
        if conflict:
            return conflict
        recipients = body.get("to") if isinstance(body, dict) else None
        if not isinstance(recipients, list):
            return line_error(400, "The property, 'to', in the request body is invalid")
        messages = _messages(body)
        for to in recipients:
            state.record_delivery(str(to), "multicast", messages, key, g.request_id)
        if key:
            state.accept_retry_key(key, g.request_id, [])
    return jsonify({})


@api.get("/message/<message_id>/content")
def message_content(message_id: str) -> Response:
    found = _state().content(message_id)
    if found is None:
        return line_error(404, "Not found")
    data, content_type = found
    return Response(data, mimetype=content_type)


@api.get("/profile/<user_id>")
def profile(user_id: str) -> Response:
    if not USER_ID_RE.match(user_id):
        return line_error(400, "The value for the 'userId' parameter is invalid")
    found = _state().profile(user_id)
    if found is None:
        return line_error(404, "Not found")
    return jsonify(found)


@api.get("/info")
def bot_info() -> Response:
    state = _state()
    return jsonify({
        "userId": state.bot_user_id,
        "basicId": state.bot_basic_id,
        "displayName": "中小企業119（シミュレーター）",
        "chatMode": "bot",
        "markAsReadMode": "auto",
    })


@api.post("/chat/loading/start")
def loading_start() -> Response:
    return Response("{}", status=202, mimetype="application/json")


# -- rich menus ----------------------------------------------------------------

def _menu_or_404(rich_menu_id: str) -> tuple[dict[str, Any] | None, Response | None]:
    menu = _state().rich_menus.get(rich_menu_id)
    if menu is None:
        return None, line_error(404, "Not found")
    return menu, None


@api.post("/richmenu")
def create_rich_menu() -> Response:
    body, error = _body_or_error()
    if error:
        return error
    if not isinstance(body, dict):
        return line_error(400, "The request body has 1 error(s)")
    rich_menu_id = "richmenu-" + secrets.token_hex(16)
    state = _state()
    with state.lock:
        state.rich_menus[rich_menu_id] = {"richMenuId": rich_menu_id, **body}
    return jsonify({"richMenuId": rich_menu_id})


@api.post("/richmenu/validate")
def validate_rich_menu() -> Response:
    return jsonify({})


@api.get("/richmenu/list")
def list_rich_menus() -> Response:
    state = _state()
    with state.lock:
        return jsonify({"richmenus": list(state.rich_menus.values())})


@api.get("/richmenu/<rich_menu_id>")
def get_rich_menu(rich_menu_id: str) -> Response:
    menu, error = _menu_or_404(rich_menu_id)
    return error or jsonify(menu)


@api.delete("/richmenu/<rich_menu_id>")
def delete_rich_menu(rich_menu_id: str) -> Response:
    state = _state()
    with state.lock:
        if state.rich_menus.pop(rich_menu_id, None) is None:
            return line_error(404, "Not found")
        state._rich_menu_images.pop(rich_menu_id, None)
        if state.default_rich_menu == rich_menu_id:
            state.default_rich_menu = None
        for user_id in [u for u, m in state.user_rich_menus.items() if m == rich_menu_id]:
            del state.user_rich_menus[user_id]
    return jsonify({})


@api.post("/richmenu/<rich_menu_id>/content")
def upload_rich_menu_image(rich_menu_id: str) -> Response:
    state = _state()
    _, error = _menu_or_404(rich_menu_id)
    if error:
        return error
    content_type = (request.mimetype or "").lower()
    if content_type not in RICH_MENU_IMAGE_TYPES:
        return line_error(415, "Unsupported media type: the image must be image/jpeg or image/png")
    data = request.get_data()
    if len(data) > RICH_MENU_IMAGE_MAX:
        return line_error(413, "The image is larger than 1 MB")
    if state.rich_menu_image(rich_menu_id) is not None:
        return line_error(400, "An image has already been uploaded to the richmenu")
    state.set_rich_menu_image(rich_menu_id, data, content_type)
    return jsonify({})


@api.get("/richmenu/<rich_menu_id>/content")
def download_rich_menu_image(rich_menu_id: str) -> Response:
    found = _state().rich_menu_image(rich_menu_id)
    if found is None:
        return line_error(404, "Not found")
    return Response(found[0], mimetype=found[1])


def _linkable(rich_menu_id: str) -> Response | None:
    _, error = _menu_or_404(rich_menu_id)
    if error:
        return error
    if _state().rich_menu_image(rich_menu_id) is None:
        return line_error(400, "must upload richmenu image before applying it to user")
    return None


@api.post("/user/all/richmenu/<rich_menu_id>")
def set_default_rich_menu(rich_menu_id: str) -> Response:
    state = _state()
    with state.lock:
        error = _linkable(rich_menu_id)
        if error:
            return error
        state.default_rich_menu = rich_menu_id
    return jsonify({})


@api.get("/user/all/richmenu")
def get_default_rich_menu() -> Response:
    menu_id = _state().default_rich_menu
    return jsonify({"richMenuId": menu_id}) if menu_id else line_error(404, "no default richmenu")


@api.delete("/user/all/richmenu")
def cancel_default_rich_menu() -> Response:
    _state().default_rich_menu = None
    return jsonify({})


@api.post("/user/<user_id>/richmenu/<rich_menu_id>")
def link_rich_menu(user_id: str, rich_menu_id: str) -> Response:
    state = _state()
    with state.lock:
        error = _linkable(rich_menu_id)
        if error:
            return error
        state.user_rich_menus[user_id] = rich_menu_id
    return jsonify({})


@api.delete("/user/<user_id>/richmenu")
def unlink_rich_menu(user_id: str) -> Response:
    state = _state()
    with state.lock:
        state.user_rich_menus.pop(user_id, None)
    return jsonify({})


@api.get("/user/<user_id>/richmenu")
def get_user_rich_menu(user_id: str) -> Response:
    menu_id = _state().user_rich_menus.get(user_id)
    return jsonify({"richMenuId": menu_id}) if menu_id else line_error(404, "the user has no richmenu")


# ---------------------------------------------------------------------------
# HTTP: simulator control (/_sim) and the chat page
# ---------------------------------------------------------------------------

sim = Blueprint("line_sim", __name__)


def _sim_error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _sim_json() -> dict[str, Any]:
    body = request.get_json(silent=True, force=True)
    return body if isinstance(body, dict) else {}


def _stored_bytes(found: tuple[bytes, str] | None, missing: str) -> Response:
    """Stored bytes with their content type, for the page (a 404 with ``missing`` if absent)."""
    if found is None:
        return _sim_error(404, missing)
    return Response(found[0], mimetype=found[1])


@sim.get("/")
def chat_page() -> Response:
    return send_from_directory(STATIC_DIR, "chat.html")


@sim.get("/static/<path:name>")
def static_file(name: str) -> Response:
    return send_from_directory(STATIC_DIR, name)


@sim.get("/static/fonts/ipaexg.ttf")
def page_font() -> Response:
    response = send_from_directory(FONT_DIR, "ipaexg.ttf", mimetype="font/ttf", max_age=86400)
    return response


@sim.get("/_sim/info")
def sim_info() -> Response:
    state = _state()
    return jsonify({
        "banner": current_app.config.get("SIM_BANNER", ""),
        "webhook": bool(state.webhook_url),
        "botUserId": state.bot_user_id,
        "contractChecks": state.checker is not None,
        "clockOffsetMinutes": round(state.clock_offset / 60),
    })


@sim.post("/_sim/clock")
def sim_clock() -> Response:
    """Set how far ahead of real time LINE's event timestamps are (0 = now)."""
    minutes = _sim_json().get("offsetMinutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 7 * 24 * 60:
        return _sim_error(400, "offsetMinutes must be an integer from 0 to 10080 (7 days)")
    _state().set_clock_offset(minutes * 60)
    return jsonify({"clockOffsetMinutes": minutes})


@sim.post("/_sim/reply-token")
def sim_reply_token() -> Response:
    user_id = _sim_json().get("userId")
    if not isinstance(user_id, str) or not user_id:
        return _sim_error(400, "userId is required")
    return jsonify({"replyToken": _state().issue_reply_token(user_id)})


@sim.post("/_sim/fail")
def sim_fail() -> Response:
    body = _sim_json()
    if not isinstance(body.get("path"), str) or "status" not in body:
        return _sim_error(400, "path and status are required")
    _state().fail(body["path"], int(body["status"]), int(body.get("count", 1)),
                  body.get("body"), float(body.get("delay", 0)))
    return jsonify({"ok": True})


@sim.post("/_sim/content")
def sim_content() -> Response:
    data = request.get_data()
    if not data:
        return _sim_error(400, "empty body")
    message_id = _state().add_content(data, request.mimetype or "application/octet-stream",
                                      request.args.get("messageId"))
    return jsonify({"messageId": message_id})


@sim.get("/_sim/content/<message_id>")
def sim_content_get(message_id: str) -> Response:
    """A user's uploaded image, for the chat page's transcript."""
    return _stored_bytes(_state().content(message_id), "no such content")


@sim.post("/_sim/users")
def sim_users() -> Response:
    body = _sim_json()
    user_id, name = body.get("userId"), body.get("displayName")
    if not isinstance(user_id, str) or not isinstance(name, str):
        return _sim_error(400, "userId and displayName are required")
    _state().set_user(user_id, name)
    return jsonify({"ok": True})


@sim.get("/_sim/messages")
def sim_messages() -> Response:
    try:
        after = int(request.args.get("after", 0))
    except ValueError:
        return _sim_error(400, "after must be an integer")
    user_id = request.args.get("user") or None
    if user_id and request.args.get("withSent") == "1":
        return jsonify(_state().timeline_for(user_id, after))
    return jsonify(_state().deliveries_for(user_id, after))


@sim.get("/_sim/activity")
def sim_activity() -> Response:
    return jsonify(_state().activity())


@sim.get("/_sim/logs")
def sim_logs() -> Response:
    """The bot's log entries about one user, for the chat page's ops panel."""
    state = _state()
    user = request.args.get("user", "")
    try:
        after = int(request.args.get("after", 0))
    except ValueError:
        return _sim_error(400, "after must be an integer")
    if not USER_ID_RE.match(user):
        return _sim_error(400, "user must match ^U[0-9a-f]{32}$")
    if state.log_source is None:
        return jsonify({"available": False, "entries": [], "next": after})
    entries, next_after = state.log_source(user, after)
    return jsonify({"available": True, "entries": entries, "next": next_after})


@sim.get("/_sim/violations")
def sim_violations() -> Response:
    state = _state()
    with state.lock:
        return jsonify(list(state.violations))


@sim.post("/_sim/reset")
def sim_reset() -> Response:
    _state().reset()
    return jsonify({"ok": True})


@sim.get("/_sim/richmenu")
def sim_rich_menu() -> Response:
    """The rich menu a user currently sees, for the chat page."""
    state = _state()
    menu = state.rich_menu_for(request.args.get("user", ""))
    has_image = bool(menu and state.rich_menu_image(menu["richMenuId"]))
    return jsonify({"richMenu": menu, "hasImage": has_image})


@sim.get("/_sim/richmenu/<rich_menu_id>/image")
def sim_rich_menu_image(rich_menu_id: str) -> Response:
    return _stored_bytes(_state().rich_menu_image(rich_menu_id), "no image")


@sim.post("/_sim/send")
def sim_send() -> Response:
    """Play LINE: build the event, sign it, post it to the bot's webhook."""
    state = _state()
    body = _sim_json()
    user_id, kind = body.pop("userId", None), body.pop("type", None)
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        return _sim_error(400, "userId must match ^U[0-9a-f]{32}$")
    if not state.webhook_url:
        return _sim_error(409, "the platform has no webhook_url")
    echo, client_id = body.pop("echo", None) or [], body.pop("clientId", None)
    if not isinstance(echo, list) or not all(isinstance(item, dict) for item in echo):
        return _sim_error(400, "echo must be a list of objects")
    try:
        response = state.send(user_id, str(kind), echo=echo,
                              client_id=client_id if isinstance(client_id, str) else None, **body)
    except (KeyError, TypeError, ValueError) as exc:
        return _sim_error(400, f"bad event: {exc}")
    except requests.RequestException as exc:
        return _sim_error(502, f"the bot did not answer: {exc.__class__.__name__}")
    return jsonify({"status": response.status_code})


def _json_errors(error: HTTPException) -> Response | HTTPException:
    """404/405 under /v2 answer JSON like LINE; the rest stays HTML."""
    if request.path.startswith("/v2/"):
        return line_error(error.code or 500, "Not found" if error.code == 404 else error.name)
    return error


# ---------------------------------------------------------------------------
# Factory and runners
# ---------------------------------------------------------------------------

def create_platform_app(
    *,
    channel_access_token: str,
    channel_secret: str,
    webhook_url: str | None = None,
    check_contract: bool = True,
    reply_token_ttl: float = 60.0,
) -> Flask:
    """A Flask app playing the LINE platform (see the module docstring)."""
    app = Flask(__name__, static_folder=None)
    app.config["SIM_BANNER"] = ""
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = PlatformState(
        channel_access_token=channel_access_token,
        channel_secret=channel_secret,
        webhook_url=webhook_url,
        check_contract=check_contract,
        reply_token_ttl=reply_token_ttl,
    )
    app.register_blueprint(api)
    app.register_blueprint(sim)
    app.register_error_handler(404, _json_errors)
    app.register_error_handler(405, _json_errors)
    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (tests and benchmarks make thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _VerboseHandler(_QuietHandler):
    """HTTP/1.1 with werkzeug's access log (``--verbose``)."""

    log_request = WSGIRequestHandler.log_request


def wsgi_app() -> Flask:
    """For a real WSGI server (the benchmark runs it under gunicorn gthread, which,
    unlike Werkzeug's development server, keeps HTTP/1.1 connections alive as
    api.line.me does). Configured by LINE_CHANNEL_ACCESS_TOKEN, LINE_CHANNEL_SECRET,
    SIM_WEBHOOK_URL and SIM_CONTRACT (0 = off)."""
    return create_platform_app(
        channel_access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
        channel_secret=os.environ["LINE_CHANNEL_SECRET"],
        webhook_url=os.environ.get("SIM_WEBHOOK_URL") or None,
        check_contract=os.environ.get("SIM_CONTRACT", "1") != "0",
        reply_token_ttl=float(os.environ.get("SIM_REPLY_TOKEN_TTL", "60")),
    )


def run_platform_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                           *, quiet: bool = True) -> tuple[BaseWSGIServer, str]:
    """Serve ``app`` from a daemon thread; stop it with ``server.shutdown()``.

    ``port=0`` picks a free port; the returned base URL has the real one.
    """
    server = make_server(host, port, app, threaded=True,
                         request_handler=_QuietHandler if quiet else None)
    # A short poll interval makes shutdown() return quickly (tests start many servers).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="line-platform", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_port}"


def main(argv: list[str] | None = None) -> None:
    """``python -m simulator.platform --port 8001 --token T --secret S --webhook-url URL``."""
    parser = argparse.ArgumentParser(prog="python -m simulator.platform",
                                     description="Fake LINE platform (Messaging API + chat page).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--token", default=os.environ.get("LINE_CHANNEL_ACCESS_TOKEN"),
                        help="channel access token the bot uses (default: $LINE_CHANNEL_ACCESS_TOKEN)")
    parser.add_argument("--secret", default=os.environ.get("LINE_CHANNEL_SECRET"),
                        help="channel secret used to sign webhooks (default: $LINE_CHANNEL_SECRET)")
    parser.add_argument("--webhook-url", help="the bot's webhook, e.g. http://127.0.0.1:8000/callback")
    parser.add_argument("--no-contract", action="store_true", help="skip request-body contract checks")
    parser.add_argument("--reply-token-ttl", type=float, default=60.0)
    parser.add_argument("--banner", default="", help="text shown at the top of the chat page")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.token or not args.secret:
        parser.error("--token and --secret are required (or LINE_CHANNEL_ACCESS_TOKEN / LINE_CHANNEL_SECRET)")

    app = create_platform_app(
        channel_access_token=args.token,
        channel_secret=args.secret,
        webhook_url=args.webhook_url,
        check_contract=not args.no_contract,
        reply_token_ttl=args.reply_token_ttl,
    )
    app.config["SIM_BANNER"] = args.banner
    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=_VerboseHandler if args.verbose else _QuietHandler)
    print(f"LINE simulator on http://{args.host}:{server.server_port}/ "
          f"(contract checks {'off' if args.no_contract else 'on'})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
