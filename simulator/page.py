"""The simulator's own pages and controls: the chat page at ``/`` and ``/_sim/*``.

None of this exists on LINE. The chat page (``static/chat.html``) lets a
person play LINE users by hand: ``POST /_sim/send`` builds a webhook event
(:mod:`simulator.events`), signs it and posts it to the bot, and the page
polls ``/_sim/messages`` for what the bot delivered (its ``X-Sim-Rich-Menu``
header says which rich menu the user sees, so the page swaps the menu the
moment the bot links another one). Tests, benchmarks and
the chaos rig use the same endpoints to reset the platform, inject failures,
upload contents, register users and read deliveries or contract violations.

Kept apart from :mod:`simulator.fake_api` so the fake Messaging API holds
only what LINE itself does; both read and write
:class:`simulator.state.PlatformState`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests
from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from simulator import events
from simulator.state import USER_ID_RE, PlatformState
from simulator.state import current_state as _state

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The Japanese font the bot ships for its documents; the chat page falls back
# to it so Japanese renders on machines without CJK fonts (CI's chromium).
FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"

sim = Blueprint("line_sim", __name__)

# Message kinds a LINE user can send that the page builds here rather than
# through ``PlatformState.build_event``: a bot meets stickers and files from
# real users, so the page must be able to send them too.
PAGE_MESSAGE_KINDS = ("sticker", "file")
STICKER_RESOURCE_TYPES = frozenset({"STATIC", "ANIMATION", "SOUND", "ANIMATION_SOUND", "POPUP", "POPUP_SOUND"})
LINE_ID_RE = re.compile(r"^[0-9]{1,20}$")  # LINE's package and sticker ids are decimal strings
FILE_NAME_MAX = 255
RICH_MENU_HEADER = "X-Sim-Rich-Menu"


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
    state = _state()
    if user_id and request.args.get("withSent") == "1":
        response = jsonify(state.timeline_for(user_id, after))
        # The page polls this anyway: telling it which menu the user sees here
        # swaps the menu as soon as the bot links another (a role changed),
        # without a second request per poll.
        response.headers[RICH_MENU_HEADER] = _rich_menu_key(state, user_id)
        return response
    return jsonify(state.deliveries_for(user_id, after))


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


def _rich_menu_key(state: PlatformState, user_id: str) -> str:
    """What the user's rich menu looks like, in one short string: the menu id
    and whether its image is there (an image uploaded after the link changes
    the drawing too). Empty: no menu."""
    menu = state.rich_menu_for(user_id)
    if not menu:
        return ""
    return f"{menu['richMenuId']}:{1 if state.rich_menu_image(menu['richMenuId']) else 0}"


@sim.get("/_sim/richmenu")
def sim_rich_menu() -> Response:
    """The rich menu a user currently sees, for the chat page."""
    state = _state()
    user_id = request.args.get("user", "")
    menu = state.rich_menu_for(user_id)
    has_image = bool(menu and state.rich_menu_image(menu["richMenuId"]))
    return jsonify({"richMenu": menu, "hasImage": has_image, "key": _rich_menu_key(state, user_id)})


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
    client_id = client_id if isinstance(client_id, str) else None
    try:
        if kind in PAGE_MESSAGE_KINDS:
            response = _send_event(state, user_id, _page_event(state, user_id, str(kind), body), echo, client_id)
        else:
            response = state.send(user_id, str(kind), echo=echo, client_id=client_id, **body)
    except (KeyError, TypeError, ValueError) as exc:
        return _sim_error(400, f"bad event: {exc}")
    except requests.RequestException as exc:
        return _sim_error(502, f"the bot did not answer: {exc.__class__.__name__}")
    return jsonify({"status": response.status_code})


# --- stickers and files: message events the platform's event builder does not make --------------


def _page_event(state: PlatformState, user_id: str, kind: str, fields: dict[str, Any]) -> events.Event:
    """A sticker or file event from the page, built by :mod:`simulator.events` with a reply
    token from this platform and LINE's (possibly advanced) clock. The fields are checked
    first (ValueError), so a bad request leaves no token or transcript entry behind."""
    if kind == "sticker":
        package_id, sticker_id, resource = _sticker_fields(fields)
        return events.sticker(user_id, state.issue_reply_token(user_id), package_id, sticker_id, resource,
                              timestamp=state.now_ms())
    message_id, name, size = _file_fields(state, fields)
    return events.file(user_id, state.issue_reply_token(user_id), name, size, message_id, timestamp=state.now_ms())


def _sticker_fields(fields: dict[str, Any]) -> tuple[str, str, str]:
    """A sticker from the page's palette: LINE sends its ids, never the picture."""
    package_id, sticker_id = fields.get("packageId"), fields.get("stickerId")
    if not (isinstance(package_id, str) and LINE_ID_RE.match(package_id)
            and isinstance(sticker_id, str) and LINE_ID_RE.match(sticker_id)):
        raise ValueError("packageId and stickerId must be strings of digits")
    resource = fields.get("stickerResourceType", "STATIC")
    if resource not in STICKER_RESOURCE_TYPES:
        raise ValueError(f"stickerResourceType must be one of {sorted(STICKER_RESOURCE_TYPES)}")
    return package_id, sticker_id, str(resource)


def _file_fields(state: PlatformState, fields: dict[str, Any]) -> tuple[str, str, int]:
    """A file the page uploaded first (``POST /_sim/content``), so the bot can fetch its bytes
    as LINE serves them; the size is that of the stored bytes, as LINE reports it."""
    message_id, name = fields.get("messageId"), fields.get("fileName")
    stored = state.content(message_id) if isinstance(message_id, str) else None
    if not isinstance(message_id, str) or stored is None:
        raise ValueError("messageId must name content uploaded to /_sim/content")
    if not isinstance(name, str) or not name.strip() or len(name) > FILE_NAME_MAX:
        raise ValueError(f"fileName must be 1 to {FILE_NAME_MAX} characters")
    return message_id, name.replace("/", "_").replace("\\", "_"), len(stored[0])


def _send_event(state: PlatformState, user_id: str, event: events.Event,
                echo: list[dict[str, Any]], client_id: str | None) -> requests.Response:
    """Post ``event`` the way ``PlatformState.send`` posts the others: the echo recorded first,
    so the transcript shows it before the answer."""
    if echo:
        state.record_user_event(user_id, echo, client_id)
    return events.post(str(state.webhook_url), state.channel_secret, [event], destination=state.bot_user_id)
