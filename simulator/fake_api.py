"""The fake LINE Messaging API: the ``/v2/bot/...`` endpoints the bot calls.

Both ``LINE_API_BASE_URL`` (api.line.me: reply, push, multicast, profile,
bot info, loading animation, rich menus) and ``LINE_DATA_API_BASE_URL``
(api-data.line.me: message contents, rich menu images) point at this one
blueprint; the paths do not overlap, so one blueprint serves both hosts.

It answers the way LINE does, so the bot's error handling is exercised for
real: bearer-token auth, ``{"message", "details"}`` error bodies,
single-use expiring reply tokens, ``X-Line-Retry-Key`` deduplication (409
with the accepted request id), and a check of every request body against
LINE's OpenAPI contract (:mod:`simulator.contract`) — a message LINE would
refuse is refused here too and recorded in ``state.violations`` so a test
suite can fail the test that caused it. Failures injected with
:meth:`~simulator.state.PlatformState.fail` are served here, before anything
is delivered.

What the endpoints remember is kept in :class:`simulator.state.PlatformState`.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from simulator import events
from simulator.contract import Violation
from simulator.state import USER_ID_RE
from simulator.state import current_state as _state

RICH_MENU_IMAGE_MAX = 1024 * 1024  # 1 MB
RICH_MENU_IMAGE_TYPES = ("image/png", "image/jpeg")
# Sent messages LINE returns a quoteToken for (they can be quoted later).
QUOTABLE_TYPES = {"text", "textV2", "sticker", "image", "video"}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

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
# The Messaging API (api.line.me and api-data.line.me paths)
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


def _body_and_retry_key() -> tuple[Any, str | None, Response | None]:
    """A push's or multicast's JSON body and retry key, or the error LINE answers first."""
    body, error = _body_or_error()
    if error:
        return None, None, error
    key, error = _retry_key()
    return body, key, error


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
    body, key, error = _body_and_retry_key()
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
    body, key, error = _body_and_retry_key()
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
    if not _state().delete_rich_menu(rich_menu_id):
        return line_error(404, "Not found")
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


def json_errors(error: HTTPException) -> Response | HTTPException:
    """404/405 under /v2 answer JSON like LINE; the rest stays HTML."""
    if request.path.startswith("/v2/"):
        return line_error(error.code or 500, "Not found" if error.code == 404 else error.name)
    return error
