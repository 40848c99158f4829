"""Rich menu images: the tile grid, its colours and icons, drawn with Pillow.

Apart from ``handlers.richmenu`` (what the menus hold, LINE sync, per-user
linking) so that module needs no Pillow; this one imports nothing from it.
``Layout`` is here because its geometry is the image's: the same ``bounds``
place the drawn tiles and the tap areas sent to LINE.

Images follow LINE's limits: PNG, 2500 px wide, 1686 (two rows) or 843
(one row) high — a width/height ratio of at least 1.45 — and at most 1 MB;
labels use the shipped IPAex Gothic font (servers rarely have a Japanese one).
"""
from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.documents import font

if TYPE_CHECKING:  # drawn on demand (``richmenu sync``): a web worker linking menus never loads Pillow
    from PIL import ImageDraw

RENDER_VERSION = 1  # bump when the drawing code changes, so images are redrawn (it is in the menus' names)

WIDTH = 2500
ROW_HEIGHT = 843  # one row: 2500×843, two rows: 2500×1686 (LINE's standard sizes)
MIN_RATIO = 1.45  # width / height
MAX_IMAGE_BYTES = 1024 * 1024

WHITE = (255, 255, 255)


# --- the grid ------------------------------------------------------------------------------------


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


# --- drawing ------------------------------------------------------------------------------------

Color = tuple[int, int, int]
Icon = Callable[["ImageDraw.ImageDraw", float, float, float, Color, Color], None]


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
    from PIL import Image, ImageDraw

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
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        if im.format != "PNG" or im.size != (width, height):
            raise ValueError(f"{layout.role}: image is {im.format} {im.size}, expected PNG {width}×{height}")
    if not 800 <= width <= 2500 or width / height < MIN_RATIO or height < 250:
        raise ValueError(f"{layout.role}: {width}×{height} is outside LINE's rich menu sizes")
    if len(png) > MAX_IMAGE_BYTES:
        raise ValueError(f"{layout.role}: image is {len(png)} bytes, LINE's limit is {MAX_IMAGE_BYTES}")
