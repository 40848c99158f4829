"""Tests for domain.validators (dates/和暦, phone, e-mail, postal, prefectures)."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.normalize import InvalidInput
from domain.validators import (
    ERAS,
    MAX_AGE,
    MIN_AGE,
    PREFECTURE_REGION,
    PREFECTURES,
    REGIONS,
    age_on,
    format_phone_display,
    parse_birthdate,
    parse_email,
    parse_phone,
    parse_postal_code,
    parse_prefectures,
    to_wareki,
)
from tests.helpers import FAST, raises_only_invalid_input, refusal

TODAY = date(2026, 11, 26)


# ----------------------------------------------------------------- birthdate

@pytest.mark.parametrize(
    "raw, expected",
    [
        # 西暦
        ("1980-04-01", date(1980, 4, 1)),
        ("1980/4/1", date(1980, 4, 1)),
        ("1980.4.1", date(1980, 4, 1)),
        ("1980 4 1", date(1980, 4, 1)),
        ("1980年4月1日", date(1980, 4, 1)),
        ("1980年4月1", date(1980, 4, 1)),
        ("1980 年 4 月 1 日", date(1980, 4, 1)),
        ("19800401", date(1980, 4, 1)),
        ("１９８０年４月１日", date(1980, 4, 1)),
        ("１９８０－０４－０１", date(1980, 4, 1)),
        ("１９８０ー０４ー０１", date(1980, 4, 1)),
        ("１９８０／４／１", date(1980, 4, 1)),
        ("１９８００４０１", date(1980, 4, 1)),
        ("1980年4月1日生まれ", date(1980, 4, 1)),
        ("  1980-04-01  ", date(1980, 4, 1)),
        ("2000-02-29", date(2000, 2, 29)),
        # 和暦
        ("昭和55年4月1日", date(1980, 4, 1)),
        ("昭和55年04月01日", date(1980, 4, 1)),
        ("昭和 55 年 4 月 1 日", date(1980, 4, 1)),
        ("昭和５５年４月１日", date(1980, 4, 1)),
        ("S55.4.1", date(1980, 4, 1)),
        ("s55.4.1", date(1980, 4, 1)),
        ("Ｓ５５．４．１", date(1980, 4, 1)),
        ("S55/4/1", date(1980, 4, 1)),
        ("S55-4-1", date(1980, 4, 1)),
        ("S550401", date(1980, 4, 1)),
        ("㍼55年4月1日", date(1980, 4, 1)),
        ("昭55年4月1日", date(1980, 4, 1)),
        ("H3/2/1", date(1991, 2, 1)),
        ("h3/2/1", date(1991, 2, 1)),
        ("平成3年2月1日", date(1991, 2, 1)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H元.1.8", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("平成1年1月8日", date(1989, 1, 8)),
        ("平成8年5月1日", date(1996, 5, 1)),
        ("昭和元年12月25日", date(1926, 12, 25)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("平成20年3月31日", date(2008, 3, 31)),
    ],
)
def test_parse_birthdate_ok(raw, expected):
    assert parse_birthdate(raw, TODAY) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("平成31年4月30日", date(2019, 4, 30)),
        ("H31.4.30", date(2019, 4, 30)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("R1.5.1", date(2019, 5, 1)),
        ("r1.5.1", date(2019, 5, 1)),
        ("R元.5.1", date(2019, 5, 1)),
        ("令和1年5月1日", date(2019, 5, 1)),
        ("令和7年1月1日", date(2025, 1, 1)),
        ("㋿2年2月2日", date(2020, 2, 2)),
    ],
)
def test_recent_eras_parse_when_old_enough(raw, expected):
    """Heisei/Reiwa dates are only adults far in the future: use a later today."""
    assert parse_birthdate(raw, date(2050, 1, 1)) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("平成31年5月1日", "令和元年5月1日"),
        ("H31.5.1", "令和元年5月1日"),
        ("平成32年1月1日", "令和2年1月1日"),
        ("昭和64年1月8日", "平成元年1月8日"),
        ("S64.1.8", "平成元年1月8日"),
        ("平成元年1月7日", "昭和64年1月7日"),
        ("令和元年4月30日", "平成31年4月30日"),
        ("昭和元年12月24日", "大正15年12月24日"),
        ("昭和0年1月1日", "昭和元年"),
        ("平成0年5月1日", "平成元年"),
    ],
)
def test_era_boundaries_refused_naming_correct_era(raw, fragment):
    assert fragment in refusal(parse_birthdate, raw, date(2050, 1, 1))


def test_heisei_31_may_message_names_reiwa():
    msg = refusal(parse_birthdate, "平成31年5月1日", date(2050, 1, 1))
    assert "平成31年5月1日" in msg and "令和元年5月1日" in msg


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("1980年2月30日", "2月30日という日付はありません"),
        ("1981-02-29", "という日付はありません"),
        ("昭和55年2月30日", "という日付はありません"),
        ("1980-13-01", "13月という月はありません"),
        ("1980-00-10", "0月という月はありません"),
        ("1980-04-31", "という日付はありません"),
        ("1980-04-00", "という日付はありません"),
        ("80/4/1", "西暦4桁"),
        ("55年4月1日", "西暦4桁"),
        ("", "生年月日を入力してください"),
        ("きのう", "年・月・日の順"),
        ("1980", "年・月・日の順"),
        ("明治40年1月1日", "年・月・日の順"),
        ("0000-01-01", "ご確認ください"),
        ("2030-01-01", "未来の日付"),
    ],
)
def test_parse_birthdate_refused(raw, fragment):
    assert fragment in refusal(parse_birthdate, raw, TODAY)


@pytest.mark.parametrize(
    "birth, ok",
    [
        (date(2008, 11, 26), True),  # 18 today
        (date(2008, 11, 27), False),  # 18 tomorrow
        (date(1926, 11, 26), True),  # 100 today
        (date(1925, 11, 27), True),  # 100, turns 101 tomorrow
        (date(1925, 11, 26), False),  # 101 today
        (date(2010, 1, 1), False),
        (date(1900, 1, 1), False),
        (TODAY, False),
    ],
)
def test_age_range(birth, ok):
    text = birth.isoformat()
    if ok:
        assert parse_birthdate(text, TODAY) == birth
    else:
        assert f"{MIN_AGE}歳以上{MAX_AGE}歳以下" in refusal(parse_birthdate, text, TODAY)


@pytest.mark.parametrize(
    "birth, today, age",
    [
        (date(1980, 4, 1), date(2026, 3, 31), 45),
        (date(1980, 4, 1), date(2026, 4, 1), 46),
        (date(2000, 2, 29), date(2018, 2, 28), 17),
        (date(2000, 2, 29), date(2018, 3, 1), 18),
        (date(2000, 2, 29), date(2020, 2, 29), 20),
        (date(2000, 1, 1), date(2000, 1, 1), 0),
    ],
)
def test_age_on(birth, today, age):
    assert age_on(birth, today) == age


@pytest.mark.parametrize(
    "d, text",
    [
        (date(1980, 4, 1), "昭和55年4月1日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
    ],
)
def test_to_wareki(d, text):
    assert to_wareki(d) == text


def test_eras_are_contiguous():
    for (_, _, end), (_, start, _) in zip(ERAS, ERAS[1:]):
        assert (start - end).days == 1


# --------------------------------------------------------------------- phone

@pytest.mark.parametrize(
    "raw, e164, display",
    [
        ("090-1234-5678", "+819012345678", "090-1234-5678"),
        ("09012345678", "+819012345678", "090-1234-5678"),
        ("０９０－１２３４－５６７８", "+819012345678", "090-1234-5678"),
        ("０９０ー１２３４ー５６７８", "+819012345678", "090-1234-5678"),
        ("090ｰ1234ｰ5678", "+819012345678", "090-1234-5678"),
        ("090−1234−5678", "+819012345678", "090-1234-5678"),
        ("090–1234–5678", "+819012345678", "090-1234-5678"),
        ("090‐1234‐5678", "+819012345678", "090-1234-5678"),
        ("090 1234 5678", "+819012345678", "090-1234-5678"),
        ("090\u30001234\u30005678", "+819012345678", "090-1234-5678"),
        ("(090)1234-5678", "+819012345678", "090-1234-5678"),
        ("+81 90-1234-5678", "+819012345678", "090-1234-5678"),
        ("+819012345678", "+819012345678", "090-1234-5678"),
        ("＋８１９０１２３４５６７８", "+819012345678", "090-1234-5678"),
        ("+81 (0)90 1234 5678", "+819012345678", "090-1234-5678"),
        ("080-1234-5678", "+818012345678", "080-1234-5678"),
        ("070-1234-5678", "+817012345678", "070-1234-5678"),
        ("03-1234-5678", "+81312345678", "03-1234-5678"),
        ("(03)1234-5678", "+81312345678", "03-1234-5678"),
        ("06-1234-5678", "+81612345678", "06-1234-5678"),
        ("011-234-5678", "+81112345678", "011-234-5678"),
        ("0987-65-4321", "+81987654321", "0987-65-4321"),
        ("050-1234-5678", "+815012345678", "050-1234-5678"),
    ],
)
def test_parse_phone_ok(raw, e164, display):
    assert parse_phone(raw) == e164
    assert format_phone_display(e164) == display


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("090-1234-567", "11桁"),  # mobile missing a digit
        ("0901234567", "11桁"),
        ("080-123-4567", "11桁"),
        ("070-1234-567", "11桁"),
        ("+81 90 1234 567", "11桁"),
        ("", "電話番号を入力してください"),
        ("でんわ", "数字とハイフン"),
        ("090-1234-5678 内線12", "数字とハイフン"),
        ("+1 202 555 0123", "日本の電話番号"),
        ("9012345678", "市外局番"),
        ("0312345", "正しくない"),
        ("03-1234-56789", "正しくない"),
        ("0120-123-456", "フリーダイヤル"),
        ("0570-012-345", "フリーダイヤル"),
        ("1" * 40, "桁数"),
    ],
)
def test_parse_phone_refused(raw, fragment):
    assert fragment in refusal(parse_phone, raw)


def test_format_phone_display_never_crashes():
    assert format_phone_display("garbage") == "garbage"


# --------------------------------------------------------------------- email

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("taro@example.com", "taro@example.com"),
        ("  taro@example.com  ", "taro@example.com"),
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", "taro@example.com"),
        ("Taro.Yamada@Example.COM", "Taro.Yamada@example.com"),
        ("taro+line@example.co.jp", "taro+line@example.co.jp"),
        ("taro_1@sub.example.jp", "taro_1@sub.example.jp"),
    ],
)
def test_parse_email_ok(raw, expected):
    assert parse_email(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("", "メールアドレスを入力してください"),
        ("taro", "「@」がありません"),
        ("taro@@example.com", "1つだけ"),
        ("a@b@example.com", "1つだけ"),
        ("@example.com", "前と後ろ"),
        ("taro@", "前と後ろ"),
        ("taro@example", "ドメイン"),
        ("taro yamada@example.com", "スペース"),
        ("taro..yamada@docomo.ne.jp", "ドット"),
        ("taro.@docomo.ne.jp", "ドット"),
        ("taro@exa mple.com", "スペース"),
        ("taro@example..com", "形式"),
        ("taro@-example.com", "形式"),
        ("ta(ro@example.com", "形式"),
    ],
)
def test_parse_email_refused(raw, fragment):
    assert fragment in refusal(parse_email, raw)


# -------------------------------------------------------------------- postal

@pytest.mark.parametrize(
    "raw",
    [
        "123-4567",
        "1234567",
        "〒123-4567",
        "〒 123-4567",
        "〒1234567",
        "１２３－４５６７",
        "１２３ー４５６７",
        "１２３ｰ４５６７",
        "123−4567",
        "123–4567",
        "123‐4567",
        "123 4567",
        "１２３\u3000４５６７",
        "  123-4567  ",
        "〶123-4567",
        "郵便番号 123-4567",
    ],
)
def test_parse_postal_code_ok(raw):
    assert parse_postal_code(raw) == "123-4567"


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("", "7桁の数字"),
        ("〒", "7桁の数字"),
        ("123-456", "6桁"),
        ("123-45678", "8桁"),
        ("abc-defg", "数字で"),
        ("東京都", "数字で"),
    ],
)
def test_parse_postal_code_refused(raw, fragment):
    assert fragment in refusal(parse_postal_code, raw)


# --------------------------------------------------------------- prefectures

def test_prefecture_tables():
    assert len(PREFECTURES) == 47 == len(set(PREFECTURES))
    assert PREFECTURES[0] == "北海道" and PREFECTURES[12] == "東京都"
    assert PREFECTURES[-1] == "沖縄県"
    assert list(REGIONS) == ["北海道", "東北", "関東", "中部", "近畿", "中国", "四国", "九州・沖縄"]
    assert sum(len(v) for v in REGIONS.values()) == 47
    assert all(len(v) <= 13 for v in REGIONS.values())  # one quick reply each
    assert PREFECTURE_REGION["神奈川県"] == "関東"
    assert PREFECTURE_REGION["沖縄県"] == "九州・沖縄"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("東京都、神奈川", ["東京都", "神奈川県"]),
        ("東京 大阪府", ["東京都", "大阪府"]),
        ("神奈川県,東京都", ["東京都", "神奈川県"]),  # official order
        ("東京，大阪", ["東京都", "大阪府"]),
        ("東京、、大阪", ["東京都", "大阪府"]),
        ("北海道・沖縄", ["北海道", "沖縄県"]),
        ("北海道", ["北海道"]),
        ("京都", ["京都府"]),
        ("京都府", ["京都府"]),
        ("東京都　京都", ["東京都", "京都府"]),
        ("東京 東京都", ["東京都"]),  # duplicates dropped
        ("和歌山", ["和歌山県"]),
        ("鹿児島県", ["鹿児島県"]),
        ("四国", ["徳島県", "香川県", "愛媛県", "高知県"]),
        ("関東地方", REGIONS["関東"]),
        ("関西", REGIONS["近畿"]),
        ("九州", REGIONS["九州・沖縄"][:-1]),
        ("九州・沖縄", REGIONS["九州・沖縄"]),
        ("全国", list(PREFECTURES)),
        ("東京と大阪", ["東京都", "大阪府"]),
    ],
)
def test_parse_prefectures_ok(raw, expected):
    assert parse_prefectures(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("", "都道府県名を入力してください"),
        ("、", "都道府県名を入力してください"),
        ("火星", "「火星」"),
        ("東京、火星、月", "「火星、月」"),
        ("北海", "「北海道」と入力"),
        ("東京府", "「東京府」"),
    ],
)
def test_parse_prefectures_refused(raw, fragment):
    assert fragment in refusal(parse_prefectures, raw)


# ---------------------------------------------------------------- hypothesis

@pytest.mark.parametrize(
    "parser",
    [parse_phone, parse_email, parse_postal_code, parse_prefectures,
     lambda s: parse_birthdate(s, TODAY)],
    ids=["phone", "email", "postal", "prefectures", "birthdate"],
)
@FAST
@given(s=st.text())
def test_parsers_only_raise_invalid_input(parser, s):
    raises_only_invalid_input(parser, s)


@FAST
@given(st.text(alphabet="0123456789０１２３４５６７８９-－ー年月日/.昭平令SHR元 ", max_size=16))
def test_birthdate_date_like_only_raises_invalid_input(s):
    try:
        d = parse_birthdate(s, TODAY)
    except InvalidInput:
        return
    assert MIN_AGE <= age_on(d, TODAY) <= MAX_AGE


@FAST
@given(st.dates(min_value=date(1926, 12, 25), max_value=date(2008, 11, 26)))
def test_wareki_roundtrip(d):
    assert parse_birthdate(to_wareki(d), TODAY) == d
    assert parse_birthdate(d.strftime("%Y/%m/%d"), TODAY) == d


@FAST
@given(st.text(alphabet="0123456789０１２３４５６７８９-－ー ()+", max_size=20))
def test_phone_digit_soup_only_raises_invalid_input(s):
    try:
        out = parse_phone(s)
    except InvalidInput:
        return
    assert out.startswith("+81")
