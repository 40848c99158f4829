"""Rich menus: one per role, drawn here, created and linked through the Messaging API.

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

Images follow LINE's limits: PNG, 2500 px wide, 1686 (two rows) or 843
(one row) high — a width/height ratio of at least 1.45 — and at most 1 MB;
labels use the shipped IPAex Gothic font (servers rarely have a Japanese one).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import redis
import structlog
from linebot.v3.messaging import MessageAction, RichMenuArea, RichMenuBounds, RichMenuRequest, RichMenuSize
from PIL import Image, ImageDraw

from domain.documents import font
from handlers.line_api import LineApi, LineApiError
from handlers.logs import pseudonym
from handlers.runtime import current
from storage import repo
from storage.models import Expert, LineUser

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

log = structlog.get_logger("richmenu")

REDIS_KEY = "richmenu:ids"  # hash: role → richMenuId
NAME_PREFIX = "119-"  # menus of ours; anything else on the channel is left alone
RENDER_VERSION = 1  # bump when the drawing code changes, so images are redrawn
DEFAULT_ROLE = "applicant"

WIDTH = 2500
ROW_HEIGHT = 843  # one row: 2500×843, two rows: 2500×1686 (LINE's standard sizes)
MIN_RATIO = 1.45  # width / height
MAX_IMAGE_BYTES = 1024 * 1024
CHAT_BAR_TEXT = "メニュー"
UPLOAD_READ_TIMEOUT = 30.0  # an image of up to 1 MB on a slow link; other calls use the configured timeout

WHITE = (255, 255, 255)


# --- what the menus hold ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    label: str  # drawn on the tile and used as the action's label (≤ 20 characters)
    text: str  # sent as the user's message when tapped: a word the bot understands
    icon: str  # a name in ICONS


@dataclass(frozen=True)
class Layout:
    role: str
    tiles: tuple[Tile, ...]
    columns: int
    color: tuple[int, int, int]  # tile background; white text on it (contrast ≥ 4.5)

    @property
    def rows(self) -> int:
        return math.ceil(len(self.tiles) / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        return WIDTH, ROW_HEIGHT * self.rows

    def bounds(self) -> list[tuple[int, int, int, int]]:
        """(x, y, width, height) of each tile; the grid covers the image exactly."""
        out = []
        for i in range(len(self.tiles)):
            row, col = divmod(i, self.columns)
            x0, x1 = round(col * WIDTH / self.columns), round((col + 1) * WIDTH / self.columns)
            out.append((x0, row * ROW_HEIGHT, x1 - x0, ROW_HEIGHT))
        return out


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


# --- drawing ------------------------------------------------------------------------------------

Color = tuple[int, int, int]
Icon = Callable[[ImageDraw.ImageDraw, float, float, float, Color, Color], None]


def _shade(color: Color, factor: float) -> Color:
    return tuple(max(0, min(255, round(c * factor))) for c in color)  # type: ignore[return-value]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def contrast_ratio(a: Color, b: Color) -> float:
    """WCAG contrast between two sRGB colours (4.5 is the bar for text)."""
    def luminance(c: Color) -> float:
        lin = [(v / 255) / 12.92 if v / 255 <= 0.04045 else (((v / 255) + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def tile_colors(layout: Layout) -> list[Color]:
    """A checkerboard of the role's colour and a darker shade, so tiles read as buttons."""
    return [layout.color if (i // layout.columns + i % layout.columns) % 2 == 0 else _shade(layout.color, 0.82)
            for i in range(len(layout.tiles))]


@functools.lru_cache(maxsize=16)
def render(layout: Layout) -> bytes:
    """The menu image: a grid of tiles, each an icon over its label, white on the role's colour."""
    width, height = layout.size
    image = Image.new("RGB", (width, height), layout.color)
    draw = ImageDraw.Draw(image)
    gutter = _mix(layout.color, WHITE, 0.45)
    for tile, (x, y, w, h), bg in zip(layout.tiles, layout.bounds(), tile_colors(layout)):
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=bg)
        size = h * 0.36
        ICONS[tile.icon](draw, x + w / 2, y + h * 0.40, size, WHITE, bg)
        label_font = _fitting_font(tile.label, max_width=w * 0.84, largest=118)
        draw.text((x + w / 2, y + h * 0.80), tile.label, font=label_font, fill=WHITE, anchor="mm",
                  stroke_width=2, stroke_fill=WHITE)  # a light bold: IPAex Gothic has one weight
    for x in {x for x, _, _, _ in layout.bounds()} - {0}:
        draw.rectangle((x - 4, 0, x + 3, height), fill=gutter)
    for row in range(1, layout.rows):
        draw.rectangle((0, row * ROW_HEIGHT - 4, width, row * ROW_HEIGHT + 3), fill=gutter)
    # A few dozen colours are all the image has: a palette PNG is a fraction of the size.
    out = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def _fitting_font(text: str, max_width: float, largest: int) -> Any:
    size = largest
    while size > 40 and font(size).getlength(text) > max_width:
        size -= 6
    return font(size)


def _rotated(points: Iterable[tuple[float, float]], cx: float, cy: float, degrees: float) -> list[tuple[float, float]]:
    a = math.radians(degrees)
    return [(cx + (px - cx) * math.cos(a) - (py - cy) * math.sin(a),
             cy + (px - cx) * math.sin(a) + (py - cy) * math.cos(a)) for px, py in points]


def _line_width(s: float) -> int:
    return max(6, round(s / 14))


def _pin(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    r, top = s * 0.30, cy - s * 0.14
    d.ellipse((cx - r, top - r, cx + r, top + r), fill=fg)
    d.polygon([(cx - r * 0.9, top + r * 0.45), (cx + r * 0.9, top + r * 0.45), (cx, cy + s * 0.48)], fill=fg)
    hole = r * 0.42
    d.ellipse((cx - hole, top - hole, cx + hole, top + hole), fill=bg)


def _exit(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    lw = _line_width(s)
    d.rectangle((cx - s * 0.45, cy - s * 0.46, cx + s * 0.08, cy + s * 0.46), outline=fg, width=lw)
    d.rectangle((cx - s * 0.02, cy - s * 0.12, cx + s * 0.30, cy + s * 0.12), fill=bg)  # the opening
    d.line((cx - s * 0.20, cy, cx + s * 0.32, cy), fill=fg, width=lw)
    d.polygon([(cx + s * 0.50, cy), (cx + s * 0.28, cy - s * 0.19), (cx + s * 0.28, cy + s * 0.19)], fill=fg)


def _page(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color) -> None:
    lw, fold = _line_width(s), s * 0.2
    x0, y0, x1, y1 = cx - s * 0.34, cy - s * 0.46, cx + s * 0.34, cy + s * 0.46
    d.line([(x0, y0), (x1 - fold, y0), (x1, y0 + fold), (x1, y1), (x0, y1), (x0, y0)], fill=fg, width=lw, joint="curve")
    d.line([(x1 - fold, y0), (x1 - fold, y0 + fold), (x1, y0 + fold)], fill=fg, width=lw)
    for i in range(3):
        yy = cy - s * 0.08 + i * s * 0.16
        d.line((x0 + s * 0.14, yy, x1 - s * 0.14, yy), fill=fg, width=lw)


def _doc(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    _page(d, cx, cy, s, fg)


def _doccheck(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    _page(d, cx - s * 0.08, cy, s, fg)
    r, ox, oy = s * 0.22, cx + s * 0.30, cy + s * 0.30
    d.ellipse((ox - r - 8, oy - r - 8, ox + r + 8, oy + r + 8), fill=bg)
    d.ellipse((ox - r, oy - r, ox + r, oy + r), fill=fg)
    d.line([(ox - r * 0.5, oy), (ox - r * 0.1, oy + r * 0.4), (ox + r * 0.55, oy - r * 0.4)], fill=bg,
           width=_line_width(s), joint="curve")


def _person(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    r = s * 0.2
    d.ellipse((cx - r, cy - s * 0.46, cx + r, cy - s * 0.46 + 2 * r), fill=fg)
    d.chord((cx - s * 0.40, cy + s * 0.02, cx + s * 0.40, cy + s * 0.86), 180, 360, fill=fg)


def _people(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    _person(d, cx + s * 0.20, cy - s * 0.06, s * 0.8, fg, bg)
    d.chord((cx - s * 0.52, cy + s * 0.02, cx + s * 0.32, cy + s * 0.86), 180, 360, fill=bg)  # a gap between them
    d.ellipse((cx - s * 0.34, cy - s * 0.46, cx + s * 0.14, cy - s * 0.02), fill=bg)
    _person(d, cx - s * 0.10, cy + s * 0.02, s * 0.86, fg, bg)


def _chart(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    base, bw = cy + s * 0.42, s * 0.2
    for i, h in enumerate((0.36, 0.60, 0.86)):
        x0 = cx - s * 0.42 + i * (bw + s * 0.11)
        d.rectangle((x0, base - s * h, x0 + bw, base), fill=fg)
    d.line((cx - s * 0.5, base + _line_width(s), cx + s * 0.5, base + _line_width(s)), fill=fg, width=_line_width(s))


def _help(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    r = s * 0.46
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fg, width=_line_width(s))
    d.text((cx, cy + s * 0.02), "?", font=font(round(s * 0.62)), fill=fg, anchor="mm", stroke_width=3, stroke_fill=fg)


def _pen(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    w = s * 0.13  # half the pencil's width; drawn upright, then turned 45°
    body = [(cx - w, cy - s * 0.46), (cx + w, cy - s * 0.46), (cx + w, cy + s * 0.22), (cx, cy + s * 0.48),
            (cx - w, cy + s * 0.22)]
    d.polygon(_rotated(body, cx, cy, 45), fill=fg)
    band = [(cx - w, cy - s * 0.30), (cx + w, cy - s * 0.30), (cx + w, cy - s * 0.24), (cx - w, cy - s * 0.24)]
    d.polygon(_rotated(band, cx, cy, 45), fill=bg)


def _hourglass(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    lw, half = _line_width(s), s * 0.30
    top, bottom = cy - s * 0.46, cy + s * 0.46
    d.rectangle((cx - half - lw, top - lw, cx + half + lw, top + lw), fill=fg)
    d.rectangle((cx - half - lw, bottom - lw, cx + half + lw, bottom + lw), fill=fg)
    d.line([(cx - half, top), (cx + half, top), (cx + s * 0.05, cy), (cx + half, bottom), (cx - half, bottom),
            (cx - s * 0.05, cy), (cx - half, top)], fill=fg, width=lw, joint="curve")
    d.polygon([(cx - half * 0.6, bottom - lw), (cx + half * 0.6, bottom - lw), (cx, cy + s * 0.12)], fill=fg)


def _send(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    tip, tail, wing, notch = (cx + s * 0.48, cy - s * 0.40), (cx + s * 0.02, cy + s * 0.46), \
        (cx - s * 0.48, cy - s * 0.02), (cx - s * 0.06, cy + s * 0.08)
    d.polygon([wing, tip, tail, notch], fill=fg)
    d.line([notch, tip], fill=bg, width=_line_width(s) // 2 + 2)


def _list(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    lw, r = _line_width(s), s * 0.07
    for i in range(3):
        yy = cy - s * 0.32 + i * s * 0.32
        d.ellipse((cx - s * 0.46 - r, yy - r, cx - s * 0.46 + r, yy + r), fill=fg)
        d.line((cx - s * 0.24, yy, cx + s * 0.48, yy), fill=fg, width=lw + 4)


def _calendar(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, fg: Color, bg: Color) -> None:
    lw = _line_width(s)
    x0, y0, x1, y1 = cx - s * 0.46, cy - s * 0.36, cx + s * 0.46, cy + s * 0.46
    d.rectangle((x0, y0, x1, y1), outline=fg, width=lw)
    d.rectangle((x0, y0, x1, y0 + s * 0.2), fill=fg)
    for tx in (cx - s * 0.24, cx + s * 0.24):
        d.rectangle((tx - lw / 2, y0 - s * 0.12, tx + lw / 2, y0 + s * 0.06), fill=fg)
    cell = s * 0.14
    for row in range(2):
        for col in range(3):
            gx, gy = cx - s * 0.27 + col * s * 0.27, cy + s * 0.04 + row * s * 0.22
            d.rectangle((gx - cell / 2, gy - cell / 2, gx + cell / 2, gy + cell / 2), fill=fg)


ICONS: dict[str, Icon] = {
    "pin": _pin, "exit": _exit, "doc": _doc, "doccheck": _doccheck, "person": _person, "people": _people,
    "chart": _chart, "help": _help, "pen": _pen, "hourglass": _hourglass, "send": _send, "list": _list,
    "calendar": _calendar,
}


def check_image(layout: Layout, png: bytes) -> None:
    """Refuse, before anything is created, an image LINE would refuse."""
    width, height = layout.size
    with Image.open(io.BytesIO(png)) as im:
        if im.format != "PNG" or im.size != (width, height):
            raise ValueError(f"{layout.role}: image is {im.format} {im.size}, expected PNG {width}×{height}")
    if not 800 <= width <= 2500 or width / height < MIN_RATIO or height < 250:
        raise ValueError(f"{layout.role}: {width}×{height} is outside LINE's rich menu sizes")
    if len(png) > MAX_IMAGE_BYTES:
        raise ValueError(f"{layout.role}: image is {len(png)} bytes, LINE's limit is {MAX_IMAGE_BYTES}")


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
    """RQ job, asked for by the flows after a role change (``conversations.roles.MENU_JOB``)."""
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
