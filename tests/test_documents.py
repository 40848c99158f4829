"""Generated documents: the 委嘱状 (PNG and PDF) and institution QR codes."""
from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

import pytest
import qrcode
from PIL import Image, ImageDraw

from domain import clock, documents

LETTER = dict(
    expert_name="山田　太郎",
    commission_number="2026-0012",
    term_start=date(2026, 4, 1),
    term_end=date(2027, 2, 28),
    issued_on=date(2026, 4, 1),
    program_name="令和8年度 中小企業119（専門家派遣事業）",
)


@pytest.fixture(scope="module")
def letter_png() -> bytes:
    return documents.render_commission_letter(**LETTER)


def _ink_rows(img: Image.Image, top: int, bottom: int) -> int:
    """How many pixel rows in [top, bottom) have something drawn on them."""
    grey = img.convert("L")
    return sum(1 for y in range(top, bottom) if grey.crop((150, y, img.width - 150, y + 1)).getextrema()[0] < 128)


def test_font_and_licence_are_shipped() -> None:
    assert documents.FONT_PATH.is_file()
    licence = documents.FONT_PATH.parent / "IPA_Font_License_Agreement_v1.0.txt"
    assert "IPA Font License Agreement v1.0" in licence.read_text(encoding="utf-8")
    assert documents.font(20) is documents.font(20)  # loaded once
    assert documents.font(20).getname()[0] == "IPAexGothic"


def test_every_character_we_print_has_a_glyph() -> None:
    """No tofu: each character renders differently from a missing glyph."""
    f = documents.font(40)

    def bitmap(ch: str) -> bytes:
        img = Image.new("L", (60, 60))
        ImageDraw.Draw(img).text((10, 10), ch, font=f, fill=255)
        return img.tobytes()

    tofu = bitmap("\U0010fffd")
    printed = ("委嘱状殿あなたを令和年度中小企業119（専門家派遣事業）の専門家に委嘱します。"
               "委嘱期間番号〜事務局機関コード：長谷川髙﨑ヤマダタロウ株式会社認定経営革新等支援よろず拠点")
    missing = [ch for ch in set(printed) if bitmap(ch) == tofu]
    assert missing == []


def test_letter_is_an_a4_png_at_150_dpi(letter_png: bytes) -> None:
    img = Image.open(io.BytesIO(letter_png))
    img.load()
    assert img.format == "PNG" and img.size == (1240, 1754)
    assert _ink_rows(img, 250, 420) > 60  # the title
    assert _ink_rows(img, 540, 660) > 30  # the addressee
    assert _ink_rows(img, 780, 1000) > 60  # the sentence


def test_letter_carries_its_data(letter_png: bytes) -> None:
    other = documents.render_commission_letter(**{**LETTER, "expert_name": "佐藤　花子"})
    assert other != letter_png


def test_letter_pdf_is_one_a4_page(letter_png: bytes) -> None:
    pdf = documents.render_commission_letter_pdf(**LETTER)
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None
    w, h = float(box.group(1)), float(box.group(2))
    assert abs(w - 595.3) < 1 and abs(h - 841.9) < 1  # A4 in points


def test_letter_with_long_values_and_wareki_stays_inside_the_page() -> None:
    png = documents.render_commission_letter(
        **{**LETTER, "expert_name": "長谷川　ひかりジョアンナ・マリア・アレクサンドラ", "program_name": LETTER["program_name"] * 6,
           "secretariat_name": "独立行政法人中小企業基盤整備機構 中小企業119 事務局（全国本部）", "date_style": "wareki"})
    img = Image.open(io.BytesIO(png))
    assert img.size == (1240, 1754)
    assert _ink_rows(img, documents.CONTENT_BOTTOM + 5, 1670) == 0  # nothing pushed onto the bottom margin


def test_letter_refuses_a_term_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError):
        documents.render_commission_letter(**{**LETTER, "term_end": date(2026, 3, 31)})


def test_dates_and_line_breaking() -> None:
    assert clock.format_date(date(2026, 4, 1)) == "2026年4月1日"
    assert clock.format_date(date(2026, 4, 1), "wareki") == "令和8年4月1日"
    f = documents.font(40)
    lines = documents.wrap_text("あなたを専門家に委嘱します。" * 5, f, 400)
    assert len(lines) > 1 and not any(line.startswith(("。", "、")) for line in lines)
    assert documents.phrases("令和8年度 中小企業119（専門家派遣事業）") == ["令和8年度 ", "中小企業119", "（専門家派遣事業）"]


# --- QR -------------------------------------------------------------------------

EXPECTED_URL = ("https://line.me/R/oaMessage/%40119sim/?"
                "%E6%A9%9F%E9%96%A2%E3%82%B3%E3%83%BC%E3%83%89%3AKIKAN-7F3Q")


def test_qr_url_follows_lines_documented_format() -> None:
    assert documents.institution_qr_url("@119sim", "KIKAN-7F3Q") == EXPECTED_URL
    assert documents.institution_qr_url("119sim", " KIKAN-7F3Q ") == EXPECTED_URL
    assert documents.institution_qr_url("@119sim", "a/b?c&d").endswith("%3Aa%2Fb%3Fc%26d")
    for bad_id in ("", "@", "@bad id", "https://x"):
        with pytest.raises(ValueError):
            documents.institution_qr_url(bad_id, "X")
    with pytest.raises(ValueError):
        documents.institution_qr_url("@119sim", " ")


def _modules_in_png(png: bytes, size: int) -> list[list[bool]]:
    """Read the QR modules back from the image: the first dark pixel from the
    top is the corner of the top-left finder pattern; sample module centres."""
    img = Image.open(io.BytesIO(png)).convert("L")
    box = documents.QR_BOX_PX
    top = next(y for y in range(img.height) if img.crop((0, y, img.width, y + 1)).getextrema()[0] < 128)
    left = next(x for x in range(img.width) if img.getpixel((x, top + box // 2)) < 128)
    return [[img.getpixel((left + c * box + box // 2, top + r * box + box // 2)) < 128 for c in range(size)]
            for r in range(size)]


def test_qr_png_encodes_the_url_and_prints_the_code() -> None:
    png = documents.render_institution_qr(basic_id="@119sim", code="KIKAN-7F3Q",
                                          institution_name="株式会社サンプル経営支援センター（認定経営革新等支援機関）")
    img = Image.open(io.BytesIO(png))
    img.load()
    assert img.format == "PNG" and img.width >= 480

    # Built independently from the literal URL: the PNG shows exactly it.
    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    reference.add_data(EXPECTED_URL)
    reference.make(fit=True)
    expected = reference.get_matrix()
    assert _modules_in_png(png, len(expected)) == expected

    qr_bottom = (len(expected) + 2 * documents.QR_QUIET_MODULES) * documents.QR_BOX_PX
    assert _ink_rows(img, qr_bottom, img.height) > 60  # name, code and hint under the QR


def test_qr_with_long_institution_name_keeps_a_readable_layout() -> None:
    name: Any = "よろず支援拠点" * 20
    png = documents.render_institution_qr(basic_id="@119sim", code="K" * 30, institution_name=name)
    img = Image.open(io.BytesIO(png))
    assert img.height < 1200
