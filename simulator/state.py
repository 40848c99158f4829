"""What the fake LINE platform remembers, and how it plays LINE towards the bot.

One :class:`PlatformState` per platform app (``app.extensions["line_platform"]``):
the deliveries the bot made, reply tokens and retry keys, injected failures,
message contents, users' profiles and blocks, rich menus, the contract
violations seen, and the clock offset for events sent from the chat page.
It is separate from the HTTP layer (:mod:`simulator.fake_api`,
:mod:`simulator.page`) so a test, a benchmark or the chaos rig can read and
drive it directly, without going through a request.

Everything is guarded by one re-entrant lock because the server runs
threaded; every public method is thread-safe.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

from simulator import events
from simulator.contract import ContractChecker, Violation

# Where the state lives in a platform app (``app.extensions[EXTENSION_KEY]``).
EXTENSION_KEY = "line_platform"

USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
RETRY_KEY_TTL = 24 * 60 * 60  # LINE remembers an accepted retry key for 24 h


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

    def delete_rich_menu(self, rich_menu_id: str) -> bool:
        """Forget a rich menu, its image and every link to it; ``False`` if unknown."""
        with self.lock:
            if self.rich_menus.pop(rich_menu_id, None) is None:
                return False
            self._rich_menu_images.pop(rich_menu_id, None)
            if self.default_rich_menu == rich_menu_id:
                self.default_rich_menu = None
            for user_id in [u for u, m in self.user_rich_menus.items() if m == rich_menu_id]:
                del self.user_rich_menus[user_id]
            return True

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
        if kind == "unfollow":
            return events.unfollow(user_id, timestamp=self.now_ms())
        token = self.issue_reply_token(user_id)
        at = self.now_ms()
        if kind == "text":
            return events.text(user_id, str(fields["text"]), token, timestamp=at)
        if kind == "postback":
            return events.postback(user_id, str(fields["data"]), token, fields.get("params") or None, timestamp=at)
        if kind == "follow":
            return events.follow(user_id, token, is_unblocked=bool(fields.get("isUnblocked", False)), timestamp=at)
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


def current_state() -> PlatformState:
    """The state of the platform app handling the current request."""
    state: PlatformState = current_app.extensions[EXTENSION_KEY]
    return state
