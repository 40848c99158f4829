"""Generated documents: the commission letter (委嘱状) and institution QR codes.

Pure functions, bytes out: no Flask, no database, no network, so the CLI, the
webhook and tests can all call them. Text is drawn with the IPAex Gothic font
shipped in ``assets/fonts`` rather than a system font, because servers and CI
images rarely have a Japanese font and Pillow's default one has no kanji (the
letter would come out as tofu).
"""
from __future__ import annotations

import functools
import io
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from domain.clock import DateStyle, format_date

if TYPE_CHECKING:  # drawn on demand: a web worker that never renders a letter never loads Pillow (≈ 4 MB)
    from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path(__file__).resolve().parent.parent / "assets" / "fonts" / "ipaexg.ttf"

# A4 portrait at 150 dpi: enough for a crisp print, small enough to send.
A4_150DPI = (1240, 1754)
LETTER_DPI = 150
CONTENT_BOTTOM = 1610  # lowest ink on the letter: well clear of the frame (1680)

INK = (34, 34, 34)
MUTED = (96, 96, 96)
FRAME = (122, 98, 52)  # a dark gold, the usual colour of certificate frames
PAPER = (255, 255, 255)

# QR code: 12 px modules print at ~2 mm at 150 dpi, easy for phone cameras.
QR_BOX_PX = 12
QR_QUIET_MODULES = 4  # the quiet zone the QR standard asks for

# Characters that must not start a line (a light 禁則処理): they hang at the
# end of the previous line instead.
_NO_LINE_START = set("、。，．・：；？！ー）」』】〕〉》’”ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ")

_BASIC_ID_RE = re.compile(r"^@[0-9a-z._-]{2,40}$")


@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    """The shipped Japanese font at ``size`` px, loaded once per size."""
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT_PATH), size)


# ---------------------------------------------------------------------------
# Text layout helpers
# ---------------------------------------------------------------------------

def _width(text: str, f: ImageFont.FreeTypeFont) -> float:
    return f.getlength(text)


def wrap_text(text: str, f: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Break Japanese text into lines no wider than ``max_width``.

    Japanese has no spaces to break on, so this breaks between any two
    characters, except that punctuation and small kana never start a line
    (they may overhang the margin by one glyph, as in print). Explicit
    newlines are kept.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for ch in paragraph:
            if line and _width(line + ch, f) > max_width and ch not in _NO_LINE_START:
                lines.append(line)
                line = ch
            else:
                line += ch
        lines.append(line)
    return lines


_PHRASE_RE = re.compile(r"[（「『【〔(][^）」』】〕)]*[）」』】〕)]?|[^\s（「『【〔(]+\s*|\s+")


def phrases(text: str) -> list[str]:
    """Cut text where a Japanese typesetter would rather break a line: after
    spaces and around bracketed groups (「中小企業119」「（専門家派遣事業）」)."""
    return _PHRASE_RE.findall(text)


def wrap_phrases(parts: list[str], f: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Like :func:`wrap_text`, but keeps each part whole when it fits on a line.

    A part wider than a whole line falls back to breaking between characters.
    """
    lines: list[str] = []
    line = ""
    for part in parts:
        if _width(line + part, f) <= max_width:
            line += part
        elif _width(part, f) <= max_width and part[:1] not in _NO_LINE_START:
            if line.strip():
                lines.append(line.rstrip())
            line = part.lstrip()
        else:
            broken = wrap_text(line + part, f, max_width)
            lines.extend(broken[:-1])
            line = broken[-1]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _fit_font(text: str, size: int, max_width: float, min_size: int = 16) -> ImageFont.FreeTypeFont:
    """The largest font ≤ ``size`` that keeps ``text`` on one line."""
    while size > min_size and _width(text, font(size)) > max_width:
        size -= 2
    return font(size)


def _line_height(f: ImageFont.FreeTypeFont, spacing: float = 1.6) -> int:
    return int(f.size * spacing)


# ---------------------------------------------------------------------------
# Commission letter (委嘱状)
# ---------------------------------------------------------------------------

def _draw_frame(draw: ImageDraw.ImageDraw, size: tuple[int, int]) -> None:
    """A double rule with small corner squares: formal, prints well in grey."""
    w, h = size
    outer, inner = 56, 74
    draw.rectangle((outer, outer, w - outer, h - outer), outline=FRAME, width=7)
    draw.rectangle((inner, inner, w - inner, h - inner), outline=FRAME, width=2)
    for cx, cy in ((outer, outer), (w - outer, outer), (outer, h - outer), (w - outer, h - outer)):
        draw.rectangle((cx - 13, cy - 13, cx + 13, cy + 13), fill=PAPER, outline=FRAME, width=3)
        draw.rectangle((cx - 5, cy - 5, cx + 5, cy + 5), fill=FRAME)


def _draw_centered(draw: ImageDraw.ImageDraw, y: int, text: str, f: ImageFont.FreeTypeFont,
                   width: int, fill: tuple[int, int, int] = INK) -> None:
    draw.text((width / 2, y), text, font=f, fill=fill, anchor="ma")


def _letter_rows(*, term_start: date, term_end: date, commission_number: str,
                 style: DateStyle) -> list[tuple[str, str]]:
    """(label, value) rows printed under the main sentence."""
    return [
        ("委嘱期間", f"{format_date(term_start, style)}〜{format_date(term_end, style)}"),
        ("委嘱番号", commission_number.strip() or "—"),
    ]


def render_commission_letter_image(
    *,
    expert_name: str,
    commission_number: str,
    term_start: date,
    term_end: date,
    issued_on: date,
    program_name: str,
    secretariat_name: str = "中小企業119 事務局",
    date_style: DateStyle = "seireki",
) -> Image.Image:
    """The 委嘱状 page as a Pillow image (both the PNG and the PDF use it)."""
    if term_end < term_start:
        raise ValueError("委嘱期間の終了日が開始日より前です")
    w, h = A4_150DPI
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (w, h), PAPER)
    draw = ImageDraw.Draw(img)
    _draw_frame(draw, (w, h))

    left, right = 190, w - 190
    text_width = right - left

    # Title, letter-spaced the way certificates are set.
    _draw_centered(draw, 270, "委　嘱　状", font(112), w)
    draw.line((w / 2 - 230, 420, w / 2 + 230, 420), fill=FRAME, width=3)

    # Addressee: name + 殿, underlined, shrunk to fit a long name. Names are
    # stored with one full-width space between family and given name.
    name = "\u3000".join(expert_name.split()) or "—"
    name_line = f"{name}　殿"
    name_font = _fit_font(name_line, 68, text_width)
    draw.text((left, 560), name_line, font=name_font, fill=INK)
    underline_y = 560 + int(name_font.size * 1.25)
    draw.line((left, underline_y, left + max(_width(name_line, name_font), 560), underline_y), fill=INK, width=2)

    # The sentence that commissions, broken between phrases where possible.
    # A long program name shrinks the type rather than pushing the date and
    # issuer off the page; past four lines even at 34 px it is cut.
    program = " ".join(program_name.split()) or "本事業"
    parts = ["あなたを", *phrases(program), "の専門家に", "委嘱します。"]
    for size in range(46, 33, -4):
        body_font = font(size)
        indent = 46  # one-em paragraph indent
        lines = wrap_phrases(parts, body_font, text_width - indent)
        if len(lines) <= 4:
            break
    if len(lines) > 4:
        lines = lines[:3] + [lines[3][:-1] + "…"]
    y = 790
    for line in lines:
        draw.text((left + indent, y), line, font=body_font, fill=INK)
        y += _line_height(body_font, 1.7)

    # Term and number as a small two-column table.
    y += 70
    row_font = font(40)
    label_w = _width("委嘱期間", row_font) + 60
    for label, value in _letter_rows(term_start=term_start, term_end=term_end,
                                     commission_number=commission_number, style=date_style):
        draw.text((left + indent, y), label, font=row_font, fill=MUTED)
        value_font = _fit_font(value, 40, text_width - indent - label_w, min_size=24)
        draw.text((left + indent + label_w, y + (row_font.size - value_font.size) // 2), value,
                  font=value_font, fill=INK)
        y += _line_height(row_font, 1.9)

    # Issue date, then the issuer aligned right, in the lower third; a long
    # issuer (two lines) lifts both so nothing reaches the bottom margin.
    issuer = " ".join(secretariat_name.split()) or "—"
    for size in range(52, 27, -4):  # two lines at most, shrinking if need be
        issuer_font = font(size)
        issuer_lines = wrap_phrases(phrases(issuer), issuer_font, text_width)
        if len(issuer_lines) <= 2:
            break
    issuer_lines = issuer_lines[:2]
    issuer_step = _line_height(issuer_font, 1.4)
    issuer_height = (len(issuer_lines) - 1) * issuer_step + issuer_font.size
    date_y: float = max(y + 100, 1380)  # float: the stubs type a font's size as float
    issuer_y = min(date_y + 130, CONTENT_BOTTOM - issuer_height)
    date_y = min(date_y, issuer_y - 100)
    draw.text((left, date_y), format_date(issued_on, date_style), font=font(42), fill=INK)
    for line in issuer_lines:
        draw.text((right, issuer_y), line, font=issuer_font, fill=INK, anchor="ra")
        issuer_y += issuer_step
    return img


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_commission_letter(
    *,
    expert_name: str,
    commission_number: str,
    term_start: date,
    term_end: date,
    issued_on: date,
    program_name: str,
    secretariat_name: str = "中小企業119 事務局",
    date_style: DateStyle = "seireki",
) -> bytes:
    """The 委嘱状 as a PNG, A4 portrait at 150 dpi (1240×1754): viewable in
    LINE's image viewer and printable at the right size."""
    return _png(render_commission_letter_image(
        expert_name=expert_name, commission_number=commission_number, term_start=term_start,
        term_end=term_end, issued_on=issued_on, program_name=program_name,
        secretariat_name=secretariat_name, date_style=date_style,
    ))


def render_commission_letter_pdf(
    *,
    expert_name: str,
    commission_number: str,
    term_start: date,
    term_end: date,
    issued_on: date,
    program_name: str,
    secretariat_name: str = "中小企業119 事務局",
    date_style: DateStyle = "seireki",
) -> bytes:
    """The same page as a one-page PDF (A4 at 150 dpi), for printing and filing.

    The page is an image, so no font is embedded in the PDF and nothing about
    the recipient's fonts can change how it looks.
    """
    img = render_commission_letter_image(
        expert_name=expert_name, commission_number=commission_number, term_start=term_start,
        term_end=term_end, issued_on=issued_on, program_name=program_name,
        secretariat_name=secretariat_name, date_style=date_style,
    )
    out = io.BytesIO()
    img.save(out, format="PDF", resolution=LETTER_DPI, title="委嘱状", author=secretariat_name)
    return out.getvalue()


# ---------------------------------------------------------------------------
# Institution QR code
# ---------------------------------------------------------------------------

def institution_code_text(code: str) -> str:
    """The message the QR pre-fills; the bot recognises it at any step."""
    return f"機関コード:{code.strip()}"


def institution_qr_url(basic_id: str, code: str) -> str:
    """``https://line.me/R/oaMessage/%40{id}/?{text}``: opens the chat with
    the official account, the institution code already typed.

    LINE's URL-scheme documentation percent-encodes the ``@`` of the account
    ID (``%40linedevelopers``); the unencoded form still works but is
    deprecated. The text is percent-encoded as UTF-8 with nothing left safe,
    so a code containing ``/``, ``?`` or ``&`` cannot break the URL.
    """
    account = basic_id.strip()
    if not account.startswith("@"):
        account = "@" + account
    if not _BASIC_ID_RE.match(account.lower()):
        raise ValueError(f"LINE公式アカウントのIDの形式ではありません: {basic_id!r}")
    if not code.strip():
        raise ValueError("機関コードが空です")
    return f"https://line.me/R/oaMessage/{quote(account, safe='')}/?{quote(institution_code_text(code), safe='')}"


def qr_matrix(data: str) -> list[list[bool]]:
    """The QR modules for ``data`` (no quiet zone): what the PNG shows."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    qr.add_data(data)
    qr.make(fit=True)
    matrix: list[list[bool]] = qr.get_matrix()
    return matrix


def render_institution_qr(*, basic_id: str, code: str, institution_name: str) -> bytes:
    """A printable PNG: the QR code, then the institution's name and code.

    Error correction M (15 %) survives a printed handout being creased or
    photographed at an angle. The code is also printed in clear, so it can
    be typed when a camera is not at hand.
    """
    url = institution_qr_url(basic_id, code)
    matrix = qr_matrix(url)
    modules = len(matrix)
    qr_px = (modules + 2 * QR_QUIET_MODULES) * QR_BOX_PX

    width = max(qr_px, 640)
    name = " ".join(institution_name.split()) or "—"
    name_font = font(34)
    name_lines = wrap_text(name, name_font, width - 64)[:3]
    code_line = f"機関コード：{code.strip()}"
    code_font = _fit_font(code_line, 38, width - 64, min_size=20)
    hint_font = font(18)
    hint_lines = wrap_phrases(["LINEのカメラで読み取ると、", "機関コードが入力された状態で", "トークが開きます"],
                              hint_font, width - 64)

    height = (qr_px + 8 + len(name_lines) * _line_height(name_font, 1.45)
              + _line_height(code_font, 1.6) + len(hint_lines) * _line_height(hint_font, 1.5) + 40)
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(img)

    x0 = (width - qr_px) // 2 + QR_QUIET_MODULES * QR_BOX_PX
    y0 = QR_QUIET_MODULES * QR_BOX_PX
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                x, y = x0 + c * QR_BOX_PX, y0 + r * QR_BOX_PX
                draw.rectangle((x, y, x + QR_BOX_PX - 1, y + QR_BOX_PX - 1), fill=(0, 0, 0))

    y = qr_px + 8
    for line in name_lines:
        _draw_centered(draw, y, line, name_font, width)
        y += _line_height(name_font, 1.45)
    _draw_centered(draw, y + 4, code_line, code_font, width)
    y += _line_height(code_font, 1.6)
    for line in hint_lines:
        _draw_centered(draw, y, line, hint_font, width, fill=MUTED)
        y += _line_height(hint_font, 1.5)
    return _png(img)
