"""One thin wrapper over line-bot-sdk v3: the only place that talks to LINE.

Base URLs come from configuration (tests and the simulator point them at
the fake platform), every call has a timeout, and urllib3's own silent
retries are off: the outbox decides what to retry, with a retry key.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import structlog
import urllib3
from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    Message,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    ShowLoadingAnimationRequest,
)
from linebot.v3.messaging.exceptions import ApiException

from conversations.kit.wire import wire
from handlers.line_transport import KeepAliveRest

log = structlog.get_logger("line_api")


class LineApiError(Exception):
    """A refused or failed call. ``status`` is None for timeouts/connection errors."""

    def __init__(self, status: int | None, message: str, body: str = "", headers: dict[str, str] | None = None):
        super().__init__(f"LINE API {status}: {message}")
        self.status = status
        self.message = message
        self.body = body
        self.headers = headers or {}

    @property
    def transient(self) -> bool:
        """Worth retrying later: timeouts, 5xx, and a rate limit that is not the monthly quota."""
        if self.status is None or self.status >= 500:
            return True
        return self.status == 429 and not self.monthly_quota

    @property
    def monthly_quota(self) -> bool:
        return self.status == 429 and "monthly limit" in self.body.lower()


def _as_dicts(messages: Sequence[Message | dict[str, Any]]) -> list[dict[str, Any]]:
    return [m if isinstance(m, dict) else wire(m) for m in messages]


class LineApi:
    def __init__(self, access_token: str, api_base_url: str, data_api_base_url: str, timeout: float = 5.0):
        self.timeout = timeout
        api_conf = Configuration(host=api_base_url, access_token=access_token)
        api_conf.retries = False
        data_conf = Configuration(host=data_api_base_url, access_token=access_token)
        data_conf.retries = False
        self._client = ApiClient(api_conf)
        self._data_client = ApiClient(data_conf)
        # The SDK's JSON calls go over kept-alive connections (handlers.line_transport).
        self._client.rest_client = KeepAliveRest(api_conf)
        self._data_client.rest_client = KeepAliveRest(data_conf)
        self.api = MessagingApi(self._client)
        self.blob = MessagingApiBlob(self._data_client)

    def _timeout(self, read_timeout: float | None = None) -> tuple[float, float]:
        return (min(self.timeout, 2.0), read_timeout or self.timeout)

    def call(self, name: str, fn: Any, *args: Any, read_timeout: float | None = None, **kwargs: Any) -> Any:
        """One SDK call with a timeout, logged; every failure becomes a ``LineApiError``.

        The one mapping of the SDK's errors: the methods below and any other
        module calling the SDK (``handlers.richmenu``) go through here.
        ``read_timeout`` lengthens the read timeout of one call (an image upload).
        """
        started = time.perf_counter()
        outcome = "ok"
        try:
            return fn(*args, _request_timeout=self._timeout(read_timeout), **kwargs)
        except ApiException as exc:
            outcome = f"http_{exc.status}"
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            raise LineApiError(exc.status, exc.reason or "error", body, dict(exc.headers or {})) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            outcome = "unreachable"
            raise LineApiError(None, type(exc).__name__) from exc
        finally:
            log.info("line_api.call", call=name, outcome=outcome, ms=round((time.perf_counter() - started) * 1000, 1))

    def reply(self, reply_token: str, messages: Sequence[Message]) -> None:
        # The messages were validated by pydantic when the flows built them; the
        # body is their JSON (``wire``: once, not the SDK's nested re-serialisation),
        # sent through the SDK's client with its argument validation skipped
        # (``raw_function``). The answer (the sent messages' ids) is never used:
        # it is read but not parsed into models (``_preload_content=False``); a
        # refusal still raises with its status and body. The body goes as JSON bytes, which the
        # SDK passes through as they are, instead of a dict it walks key by key (≈ 20 calls).
        body = json.dumps({"replyToken": reply_token, "messages": [wire(m) for m in messages]},
                          ensure_ascii=False).encode("utf-8")
        raw = MessagingApi.reply_message_with_http_info.raw_function
        self.call("reply", raw, self.api, body, _preload_content=False)

    def push(self, to: str, messages: Sequence[Message | dict[str, Any]], retry_key: str) -> None:
        request = PushMessageRequest.from_dict({"to": to, "messages": _as_dicts(messages)})
        self.call("push", self.api.push_message_with_http_info, request, x_line_retry_key=retry_key)

    def multicast(self, to: Sequence[str], messages: Sequence[Message | dict[str, Any]], retry_key: str) -> None:
        """The same messages to up to 500 users in one call (LINE's limit)."""
        request = MulticastRequest.from_dict({"to": list(to), "messages": _as_dicts(messages)})
        self.call("multicast", self.api.multicast_with_http_info, request, x_line_retry_key=retry_key)

    def content(self, message_id: str) -> bytes:
        """Download an image the user sent; LINE keeps it only for a while."""
        response = self.call("content", self.blob.get_message_content_with_http_info, message_id)
        return bytes(response.data)

    def display_name(self, user_id: str) -> str:
        return str(self.call("profile", self.api.get_profile, user_id).display_name)

    def show_loading(self, user_id: str, seconds: int = 5) -> None:
        request = ShowLoadingAnimationRequest(chatId=user_id, loadingSeconds=seconds)
        self.call("loading", self.api.show_loading_animation, request)
