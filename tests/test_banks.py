"""Tests for domain.banks against the real zengin-code data."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.banks import (
    ACCOUNT_TYPE_CODES,
    ACCOUNT_TYPES,
    YUCHO_BANK_CODE,
    Bank,
    Branch,
    convert_yucho,
    find_bank,
    find_branch,
    get_bank,
    get_branch,
    holder_matches_own_name,
    parse_account_number,
    parse_account_type,
    parse_yucho,
)
from domain.normalize import InvalidInput
from tests.helpers import FAST, raises_only_invalid_input, refusal

# ---------------------------------------------------------------- find_bank

@pytest.mark.parametrize(
    "query, first_code",
    [
        ("0001", "0001"),
        ("０００１", "0001"),
        (" 0005 ", "0005"),
        ("9900", "9900"),
        ("みずほ", "0001"),
        ("みずほ銀行", "0001"),
        ("ミズホ", "0001"),
        ("ﾐｽﾞﾎ", "0001"),
        ("みずほぎんこう", "0001"),
        ("mizuho", "0001"),
        ("三菱UFJ", "0005"),
        ("三菱ＵＦＪ", "0005"),
        ("三菱ufj銀行", "0005"),
        ("みつびしゆーえふじぇい", "0005"),
        ("三井住友", "0009"),
        ("三井住友銀行", "0009"),
        ("りそな", "0010"),
        ("ゆうちょ", "9900"),
        ("ゆうちょ銀行", "9900"),
        ("PayPay", "0033"),
        ("ペイペイ銀行", "0033"),
        ("楽天銀行", "0036"),
        ("ソニー銀行", "0035"),
        ("横浜", "0138"),
        ("網走信用金庫", "1031"),
        ("網走信金", "1031"),
        ("JAあいら", "9319"),
        ("あいら農業協同組合", "9319"),
        ("三菱", "0005"),  # prefix
        ("UFJ", "0005"),  # contains
    ],
)
def test_find_bank_first_result(query, first_code):
    result = find_bank(query)
    assert result, query
    assert result[0].code == first_code
    assert all(isinstance(b, Bank) for b in result)


def test_find_bank_exact_before_prefix_before_contains():
    codes = [b.code for b in find_bank("みずほ")]
    assert codes[0] == "0001"  # みずほ (exact)
    assert codes.index("0289") < codes.index("4859")  # みずほ信託 (prefix) < 埼玉みずほ農協


def test_find_bank_values():
    (mizuho,) = find_bank("0001")
    assert mizuho == Bank(code="0001", name="みずほ", kana="ミズホ")
    assert get_bank("0001") == mizuho
    assert get_bank("9999") is None


def test_find_bank_limit():
    assert len(find_bank("しんきん", limit=5)) == 5
    assert len(find_bank("しんきん")) > 100


@pytest.mark.parametrize("query", ["9999", "存在しない銀行", "zzzzzz"])
def test_find_bank_not_found(query):
    assert find_bank(query) == []


@pytest.mark.parametrize(
    "query, fragment",
    [("", "銀行名か4桁"), ("   ", "銀行名か4桁"), ("1", "4桁"), ("00001", "4桁"), ("12-3", "4桁")],
)
def test_find_bank_refused(query, fragment):
    assert fragment in refusal(find_bank, query)


# -------------------------------------------------------------- find_branch

@pytest.mark.parametrize(
    "bank, query, first_code",
    [
        ("0001", "001", "001"),
        ("0001", "００１", "001"),
        ("0001", "東京営業部", "001"),
        ("0001", "とうきょう", "001"),
        ("0001", "新宿", "240"),
        ("0001", "新宿支店", "240"),
        ("0001", "しんじゅく", "240"),
        ("0001", "ｼﾝｼﾞｭｸ", "240"),
        ("0001", "shinjiyuku", "240"),  # zengin roma is kana-literal
        ("0001", "丸の内中央", "004"),
        ("０００１", "001", "001"),
        ("9900", "408", "408"),
        ("9900", "四〇八", "408"),
        ("9900", "〇一八店", "018"),
        ("9900", "059", "059"),
    ],
)
def test_find_branch_first_result(bank, query, first_code):
    result = find_branch(bank, query)
    assert result
    assert result[0].code == first_code
    assert all(isinstance(b, Branch) for b in result)


def test_find_branch_values():
    assert find_branch("0001", "001") == [Branch(code="001", name="東京営業部", kana="トウキヨウ")]
    assert get_branch("0001", "001") == Branch(code="001", name="東京営業部", kana="トウキヨウ")
    assert get_branch("0001", "999") is None
    assert get_branch("9999", "001") is None


def test_find_branch_not_found():
    assert find_branch("0001", "999") == []
    assert find_branch("0001", "存在しない支店") == []


@pytest.mark.parametrize(
    "bank, query, fragment",
    [
        ("0001", "", "支店名か3桁"),
        ("0001", "12", "3桁"),
        ("0001", "1234", "3桁"),
        ("9999", "001", "金融機関が見つかりません"),
        ("abc", "001", "金融機関が見つかりません"),
        ("", "001", "金融機関が見つかりません"),
    ],
)
def test_find_branch_refused(bank, query, fragment):
    assert fragment in refusal(find_branch, bank, query)


# ----------------------------------------------------------- account fields

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("普通", "普通"), ("普通預金", "普通"), ("ふつう", "普通"), ("フツウ", "普通"),
        ("ﾌﾂｳ", "普通"), ("1", "普通"), ("１", "普通"), ("総合口座", "普通"),
        ("当座", "当座"), ("当座預金", "当座"), ("とうざ", "当座"), ("ﾄｳｻﾞ", "当座"), ("2", "当座"),
        ("貯蓄", "貯蓄"), ("貯蓄預金", "貯蓄"), ("ちょちく", "貯蓄"), ("4", "貯蓄"),
        (" 普通 ", "普通"),
    ],
)
def test_parse_account_type(raw, expected):
    assert parse_account_type(raw) == expected


@pytest.mark.parametrize("raw", ["", "3", "定期", "checking", "9"])
def test_parse_account_type_refused(raw):
    assert "普通" in refusal(parse_account_type, raw)


def test_account_type_codes():
    assert set(ACCOUNT_TYPES) == set(ACCOUNT_TYPE_CODES)
    assert ACCOUNT_TYPE_CODES == {"普通": "1", "当座": "2", "貯蓄": "4"}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1234567", "1234567"),
        ("１２３４５６７", "1234567"),
        ("123", "0000123"),
        ("1", "0000001"),
        ("０１２３４５６", "0123456"),
        ("123-4567", "1234567"),
        ("123 4567", "1234567"),
        ("１２３ー４５６７", "1234567"),
    ],
)
def test_parse_account_number(raw, expected):
    assert parse_account_number(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [("", "数字で"), ("12345678", "7桁まで"), ("12a4", "数字だけ"), ("0000000", "ご確認"), ("0", "ご確認")],
)
def test_parse_account_number_refused(raw, fragment):
    assert fragment in refusal(parse_account_number, raw)


# ------------------------------------------------------------------ ゆうちょ

@pytest.mark.parametrize(
    "kigou, bangou, expected",
    [
        ("14030", "12345671", ("408", "普通", "1234567")),
        ("１４０３０", "１２３４５６７１", ("408", "普通", "1234567")),
        ("10180", "12345671", ("018", "普通", "1234567")),
        ("14030", "1234561", ("408", "普通", "0123456")),
        ("00580", "654321", ("059", "当座", "0654321")),
        ("00580", "１", ("059", "当座", "0000001")),
        ("00120", "1234567", ("019", "当座", "1234567")),
    ],
)
def test_convert_yucho(kigou, bangou, expected):
    assert convert_yucho(kigou, bangou) == expected
    assert get_branch(YUCHO_BANK_CODE, expected[0]) is not None


@pytest.mark.parametrize(
    "kigou, bangou, fragment",
    [
        ("1403", "12345671", "5桁"),
        ("140300", "12345671", "5桁"),
        ("", "12345671", "記号を数字で"),
        ("14030", "", "番号を数字で"),
        ("14030", "123456789", "8桁まで"),
        ("14030", "1", "番号をご確認"),
        ("24030", "12345671", "「1」か「0」"),
        ("00580", "12345678", "7桁まで"),
        ("1403a", "12345671", "数字だけ"),
        ("00580", "0000", "番号をご確認"),
        ("09990", "123456", "店が見つかりません"),
    ],
)
def test_convert_yucho_refused(kigou, bangou, fragment):
    assert fragment in refusal(convert_yucho, kigou, bangou)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("14030-12345671", ("408", "普通", "1234567")),
        ("１４０３０－１２３４５６７１", ("408", "普通", "1234567")),
        ("１４０３０ー１２３４５６７１", ("408", "普通", "1234567")),
        ("14030 12345671", ("408", "普通", "1234567")),
        ("14030\u300012345671", ("408", "普通", "1234567")),
        (" 14030 - 12345671 ", ("408", "普通", "1234567")),
        ("1403012345671", ("408", "普通", "1234567")),
        ("記号14030 番号12345671", ("408", "普通", "1234567")),
        ("記号：14030、番号：12345671".replace("、", " "), ("408", "普通", "1234567")),
        ("00580-654321", ("059", "当座", "0654321")),
        ("００５８０－６５４３２１", ("059", "当座", "0654321")),
        ("00580-6-654321", ("059", "当座", "0654321")),
    ],
)
def test_parse_yucho(raw, expected):
    assert parse_yucho(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("", "記号と番号を入力"),
        ("14030", "「-」を入れて"),
        ("14030-1234-5671-1", "「-」を入れて"),
        ("ゆうちょ", "数字で"),
        ("1403-12345671", "5桁"),
        ("14030-123456789", "8桁まで"),
    ],
)
def test_parse_yucho_refused(raw, fragment):
    assert fragment in refusal(parse_yucho, raw)


# ----------------------------------------------------------- own-name check

@pytest.mark.parametrize(
    "holder, expert, expected",
    [
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ　タロウ", True),
        ("ヤマダ タロウ", "ヤマダ　タロウ", True),
        ("やまだ たろう", "ヤマダ　タロウ", True),
        ("ヤマダタロウ", "ヤマダ　タロウ", True),  # spaces ignored
        ("ﾔﾏﾀﾞ  ﾀﾛｳ", "ヤマダ タロウ", True),
        ("ｻﾄｳ ｷﾖｳｺ", "サトウ　キョウコ", True),  # small kana made large
        ("サトウ キョウコ", "サトウ　キヨウコ", True),
        ("ｶﾞｯｺｳ ｼﾞｭﾝ", "ガッコウ　ジュン", True),
        ("ヤマダ ハナコ", "ヤマダ　タロウ", False),
        ("ヤマダ タロ", "ヤマダ　タロウ", False),
        ("ヤマダ ダロウ", "ヤマダ　タロウ", False),  # dakuten matters
        ("ﾔﾏﾀﾞ ﾀﾛｳ (ｶ", "ヤマダ　タロウ", False),
        ("山田 太郎", "ヤマダ　タロウ", False),  # not kana: never raises
        ("", "ヤマダ　タロウ", False),
        ("", "", False),
    ],
)
def test_holder_matches_own_name(holder, expert, expected):
    assert holder_matches_own_name(holder, expert) is expected


# ---------------------------------------------------------------- hypothesis

@pytest.mark.parametrize(
    "parser",
    [
        find_bank,
        lambda s: find_branch("0001", s),
        lambda s: find_branch(s, "001"),
        parse_account_type,
        parse_account_number,
        parse_yucho,
        lambda s: convert_yucho(s, "12345671"),
        lambda s: convert_yucho("14030", s),
    ],
    ids=["bank", "branch", "branch-bank", "type", "number", "yucho", "kigou", "bangou"],
)
@FAST
@given(s=st.text())
def test_parsers_only_raise_invalid_input(parser, s):
    raises_only_invalid_input(parser, s)


@FAST
@given(st.text(alphabet="0123456789０１２３４５６７８９-－ー 記号番号", max_size=20))
def test_yucho_digit_soup(s):
    try:
        branch, kind, number = parse_yucho(s)
    except InvalidInput:
        return
    assert len(branch) == 3 and kind in ("普通", "当座") and len(number) == 7


@FAST
@given(st.text(), st.text())
def test_holder_matches_never_raises(a, b):
    assert holder_matches_own_name(a, b) in (True, False)
