"""Rich menus: one per role, created and linked through the Messaging API.

``python bot.py richmenu sync`` makes LINE hold exactly the menus below:
each is named ``119-<role>-v<render>-<hash of its layout>``, so a second
sync finds them by name and creates nothing, while a changed layout gets a
new name: the new menu is created, its users are moved to it, and only then
is the old one deleted (deleting a menu unlinks everyone on it). The
applicant menu is the account default (new users, experts not yet
commissioned); the others are linked per user.

The role → richMenuId map is kept in Redis (``richmenu:ids``) so that
``link_user`` — an RQ job the flows ask for after a role change — links
without listing menus. Each tile sends, as the user's own message, the word
the bot already understands (「チェックイン」, 「審査待ち」, ``/pending`` …),
so a tap and typing are the same thing and nothing new needs routing.

The images (tile grid, colours, icons, LINE's image limits) are drawn by
``handlers.richmenu_drawing``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import redis
import structlog
from linebot.v3.messaging import MessageAction, RichMenuArea, RichMenuBounds, RichMenuRequest, RichMenuSize

from handlers.line_api import LineApi, LineApiError
from handlers.logs import pseudonym
from handlers.richmenu_drawing import RENDER_VERSION, Layout, Tile, check_image, render
from handlers.runtime import current
from storage import repo
from storage.models import Expert, LineUser

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

log = structlog.get_logger("richmenu")

REDIS_KEY = "richmenu:ids"  # hash: role → richMenuId
NAME_PREFIX = "119-"  # menus of ours; anything else on the channel is left alone
DEFAULT_ROLE = "applicant"

CHAT_BAR_TEXT = "メニュー"
UPLOAD_READ_TIMEOUT = 30.0  # an image of up to 1 MB on a slow link; other calls use the configured timeout


# --- what the menus hold ----------------------------------------------------------------------


LAYOUTS: dict[str, Layout] = {
    "applicant": Layout("applicant", (
        Tile("登録", "登録", "pen"),
        Tile("状況", "状況", "chart"),
        Tile("ヘルプ", "ヘルプ", "help"),
    ), columns=3, color=(0, 109, 119)),
    "expert": Layout("expert", (
        Tile("チェックイン", "チェックイン", "pin"),
        Tile("チェックアウト", "チェックアウト", "exit"),
        Tile("報告書", "報告書", "doc"),
        Tile("プロフィール", "登録内容の変更", "person"),
        Tile("状況", "状況", "chart"),
        Tile("ヘルプ", "ヘルプ", "help"),
    ), columns=3, color=(11, 110, 79)),
    "reviewer": Layout("reviewer", (
        Tile("審査待ち", "審査待ち", "hourglass"),
        Tile("支援依頼", "支援依頼", "send"),
        Tile("依頼一覧", "依頼一覧", "list"),
        Tile("報告書確認", "報告書", "doccheck"),
        Tile("状況", "状況", "chart"),
        Tile("ヘルプ", "ヘルプ", "help"),
    ), columns=3, color=(29, 79, 145)),
    "secretariat": Layout("secretariat", (
        Tile("承認待ち", "/pending", "hourglass"),
        Tile("派遣一覧", "/dispatches", "calendar"),
        Tile("報告書", "/reports", "doccheck"),
        Tile("集計", "/stats", "chart"),
        Tile("担当者一覧", "/staff", "people"),
        Tile("コマンド", "/help", "help"),
    ), columns=3, color=(91, 58, 142)),
}


def menu_request(layout: Layout, name: str | None = None) -> RichMenuRequest:
    width, height = layout.size
    areas = [
        RichMenuArea(bounds=RichMenuBounds(x=x, y=y, width=w, height=h),
                     action=MessageAction(label=tile.label, text=tile.text))
        for tile, (x, y, w, h) in zip(layout.tiles, layout.bounds())
    ]
    return RichMenuRequest(size=RichMenuSize(width=width, height=height), selected=True,
                           name=name or menu_name(layout), chatBarText=CHAT_BAR_TEXT, areas=areas)


def menu_name(layout: Layout) -> str:
    """``119-<role>-v<render version>-<hash>``: the hash covers everything that is drawn or sent."""
    spec = {"render": RENDER_VERSION, "size": layout.size, "columns": layout.columns, "color": layout.color,
            "tiles": [(t.label, t.text, t.icon) for t in layout.tiles], "chatBar": CHAT_BAR_TEXT}
    digest = hashlib.sha256(json.dumps(spec, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:10]
    return f"{NAME_PREFIX}{layout.role}-v{RENDER_VERSION}-{digest}"


# --- talking to LINE ------------------------------------------------------------------------------
# Every call goes through ``LineApi.call``: its timeouts, its log line, its ``LineApiError``.


def _create(line: LineApi, layout: Layout, name: str) -> str:
    """Create the menu and upload its image; a menu left without an image is deleted again."""
    png = render(layout)
    check_image(layout, png)
    menu_id = str(line.call("richmenu.create", line.api.create_rich_menu, menu_request(layout, name)).rich_menu_id)
    try:
        line.call("richmenu.upload", line.blob.set_rich_menu_image, menu_id, png,
                  _headers={"Content-Type": "image/png"}, read_timeout=max(line.timeout, UPLOAD_READ_TIMEOUT))
    except LineApiError:
        try:
            line.call("richmenu.delete", line.api.delete_rich_menu, menu_id)
        except LineApiError:
            log.warning("richmenu.orphan", rich_menu_id=menu_id)  # no image: the next sync replaces it
        raise
    return menu_id


def _has_image(line: LineApi, menu_id: str) -> bool:
    """A menu left without its image (a failed upload) cannot be linked: it is replaced, not reused."""
    try:
        line.call("richmenu.image", line.blob.get_rich_menu_image, menu_id)
        return True
    except LineApiError as exc:
        if exc.status == 404:
            return False
        raise


@dataclass
class SyncResult:
    ids: dict[str, str]  # role → richMenuId, as stored in Redis
    created: list[str] = field(default_factory=list)  # names
    deleted: list[str] = field(default_factory=list)  # names
    relinked: int = 0  # users moved to a new menu


def sync(line: LineApi, store: redis.Redis, layouts: Mapping[str, Layout] = LAYOUTS, *,
         relink_all: bool = False) -> SyncResult:
    """Make LINE hold exactly ``layouts``' menus and ``store`` their ids; idempotent.

    Order matters: create what is missing, set the default, store the ids,
    move users whose role's menu changed (all of them with ``relink_all``),
    and delete old menus last, so no one is left without a menu in between.
    """
    existing = line.call("richmenu.list", line.api.get_rich_menu_list).richmenus or []
    by_name: dict[str, list[str]] = {}
    for menu in existing:
        by_name.setdefault(menu.name or "", []).append(menu.rich_menu_id)
    previous = stored_ids(store)
    result = SyncResult(ids={})
    for role, layout in layouts.items():
        name = menu_name(layout)
        found = next((menu_id for menu_id in by_name.get(name, []) if _has_image(line, menu_id)), None)
        if found:
            result.ids[role] = found
        else:
            result.ids[role] = _create(line, layout, name)
            result.created.append(name)
            log.info("richmenu.created", role=role, name=name, rich_menu_id=result.ids[role])
    line.call("richmenu.default", line.api.set_default_rich_menu, result.ids[DEFAULT_ROLE])
    pipe = store.pipeline()
    pipe.delete(REDIS_KEY)
    pipe.hset(REDIS_KEY, mapping=cast("Mapping[FieldT, EncodableT]", result.ids))  # Mapping's key type is invariant
    pipe.execute()
    changed = {role for role, menu_id in result.ids.items() if relink_all or previous.get(role) != menu_id}
    for user_id, role in _users_with_menus():
        if role in changed:
            try:
                line.call("richmenu.link", line.api.link_rich_menu_id_to_user, user_id, result.ids[role])
                result.relinked += 1
            except LineApiError as exc:
                if exc.transient:
                    raise
                log.warning("richmenu.link_refused", status=exc.status)  # e.g. the user blocked the account
    keep = set(result.ids.values())
    for menu in existing:
        if (menu.name or "").startswith(NAME_PREFIX) and menu.rich_menu_id not in keep:
            line.call("richmenu.delete", line.api.delete_rich_menu, menu.rich_menu_id)
            result.deleted.append(menu.name)
            log.info("richmenu.deleted", name=menu.name, rich_menu_id=menu.rich_menu_id)
    return result


# --- which menu a user sees ----------------------------------------------------------------------


def menu_role(user: LineUser | None) -> str | None:
    """The role whose menu ``user`` gets; ``None`` means the default (applicant) menu."""
    if user is None:
        return None
    if user.role in ("secretariat", "reviewer"):
        return str(user.role)
    expert = repo.expert_of(user)
    if expert is not None and expert.status == "commissioned":
        return "expert"
    return None


def _users_with_menus() -> list[tuple[str, str]]:
    """(LINE user id, role) of everyone who is linked to a menu other than the default."""
    staff = LineUser.select().where(LineUser.role.in_(["secretariat", "reviewer"]))
    experts = (LineUser.select().join(Expert, on=(Expert.user == LineUser.id))
               .where(Expert.status == "commissioned"))
    seen: dict[str, str] = {}
    for user in list(staff) + list(experts):
        role = menu_role(user)
        if role is not None and user.following:
            seen[user.line_user_id] = role
    return sorted(seen.items())


def stored_ids(store: redis.Redis) -> dict[str, str]:
    """role → richMenuId as the last sync left them (empty before the first sync)."""
    stored = cast("dict[bytes, bytes]", store.hgetall(REDIS_KEY))  # the store does not decode responses
    return {k.decode(): v.decode() for k, v in stored.items()}


def link_user(line_user_id: str) -> str:
    """The job ``conversations.roles.MENU_JOB`` (``handlers.jobs``), asked for by the flows after a role change."""
    rt = current()
    return link(rt.line, rt.worker_redis, line_user_id)


def link(line: LineApi, store: redis.Redis, line_user_id: str) -> str:
    """Show the user their role's menu; no role → unlink, so they see the default one.

    The role is read from SQL now, so jobs that run late or out of order still
    end on the current role. Before the first ``richmenu sync`` there are no
    menus and nothing is done. A transient LINE failure raises (the job fails;
    ``richmenu sync --relink`` puts everyone right); a refusal (e.g. the user
    blocked the account) is logged and returned.
    """
    ids = stored_ids(store)
    if not ids:
        return "not_synced"
    role = menu_role(LineUser.get_or_none(LineUser.line_user_id == line_user_id))
    menu_id = ids.get(role) if role else None
    try:
        if menu_id:
            line.call("richmenu.link", line.api.link_rich_menu_id_to_user, line_user_id, menu_id)
            outcome = f"linked:{role}"
        else:
            line.call("richmenu.unlink", line.api.unlink_rich_menu_id_from_user, line_user_id)
            outcome = "unlinked"
    except LineApiError as exc:
        if exc.transient:
            raise
        log.warning("richmenu.link_refused", status=exc.status, role=role, user=pseudonym(line_user_id))
        return f"refused:{exc.status}"
    log.info("richmenu.user", outcome=outcome, user=pseudonym(line_user_id))
    return outcome
