"""Tests for domain.normalize (widths, kana, names, 全銀 kana)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.normalize import (
    InvalidInput,
    clean,
    digits_and_hyphens,
    format_name,
    hira_to_kata,
    parse_kana_name,
    parse_person_name,
    to_zengin_kana,
)
from tests.helpers import FAST, raises_only_invalid_input, refusal

# --------------------------------------------------------------------- clean

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  山田　太郎  ", "山田 太郎"),
        ("山田\t\t太郎", "山田 太郎"),
        ("山田\u00a0太郎", "山田 太郎"),
        ("山田 \u3000 \n太郎", "山田 太郎"),
        ("ＡＢＣ１２３", "ABC123"),
        ("ｶﾀｶﾅ", "カタカナ"),
        ("ｶﾞｯｺｳ", "ガッコウ"),  # half-width dakuten composed
        ("ﾊﾟﾝ", "パン"),
        ("カタカナ", "カタカナ"),  # full-width katakana stays full-width
        ("カ゛ス", "ガス"),  # spacing dakuten composes, no stray space
        ("a\u200bb", "ab"),  # zero-width space dropped
        ("\ufeffabc", "abc"),  # BOM dropped
        ("㍻3年", "平成3年"),
        ("①", "1"),
        ("", ""),
        ("   ", ""),
        ("\u3000", ""),
    ],
)
def test_clean(raw, expected):
    assert clean(raw) == expected


def test_clean_keeps_cjk_compatibility_ideographs():
    # U+FA19 (神 compatibility form) would be folded by plain NFKC.
    assert clean("\ufa19田") == "\ufa19田"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("090-1234-5678", "090-1234-5678"),
        ("０９０－１２３４－５６７８", "090-1234-5678"),
        ("090ー1234ー5678", "090-1234-5678"),  # long vowel between digits
        ("090ｰ1234ｰ5678", "090-1234-5678"),  # half-width long vowel
        ("090‐1234‐5678", "090-1234-5678"),  # U+2010
        ("090‑1234‑5678", "090-1234-5678"),  # U+2011
        ("090‒1234‒5678", "090-1234-5678"),  # U+2012
        ("090–1234–5678", "090-1234-5678"),  # en dash
        ("090—1234—5678", "090-1234-5678"),  # em dash
        ("090―1234―5678", "090-1234-5678"),  # horizontal bar
        ("090−1234−5678", "090-1234-5678"),  # minus sign
        ("090﹣1234﹣5678", "090-1234-5678"),  # small hyphen-minus
        ("090─1234─5678", "090-1234-5678"),  # box drawing
        ("090一1234一5678", "090-1234-5678"),  # kanji one mis-conversion
        ("123 ー 4567", "123 - 4567"),
        ("ソニー", "ソニー"),  # long vowel in kana untouched
        ("ー1", "ー1"),  # not between digits
    ],
)
def test_digits_and_hyphens(raw, expected):
    assert digits_and_hyphens(raw) == expected


def test_hira_to_kata():
    assert hira_to_kata("やまだ たろう ゔ ゝ abc") == "ヤマダ タロウ ヴ ヽ abc"


# --------------------------------------------------------------- person name

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("山田 太郎", ("山田", "太郎")),
        ("山田　太郎", ("山田", "太郎")),
        ("  山田 \u3000\t 太郎  ", ("山田", "太郎")),
        ("佐々木 一二三", ("佐々木", "一二三")),  # 々 and kanji numerals are fine
        ("髙橋 美ゆき", ("髙橋", "美ゆき")),
        ("スミス ジョン・ポール", ("スミス", "ジョン・ポール")),
        ("Smith John", ("Smith", "John")),
        ("ｽﾐｽ ｼﾞｮﾝ", ("スミス", "ジョン")),
        ("山" * 20 + " " + "太" * 20, ("山" * 20, "太" * 20)),
    ],
)
def test_parse_person_name_ok(raw, expected):
    assert parse_person_name(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("山田太郎", "姓と名の間にスペースを入れてください"),
        ("", "お名前を入力してください"),
        ("   ", "お名前を入力してください"),
        ("山田 太 郎", "1か所だけ"),
        ("山田 太郎 次郎", "1か所だけ"),
        ("山田1 太郎", "数字"),
        ("山田 太郎２", "数字"),
        ("山田 ☆太郎", "記号"),
        ("山田 太郎!", "記号"),
        ("山田 (太郎)", "記号"),
        ("山" * 21 + " 太郎", "20文字以内"),
        ("山田 " + "太" * 21, "20文字以内"),
        ("・ 太郎", "文字で入力"),
    ],
)
def test_parse_person_name_refused(raw, fragment):
    assert fragment in refusal(parse_person_name, raw)


def test_person_name_message_example():
    assert refusal(parse_person_name, "山田太郎") == "姓と名の間にスペースを入れてください（例：山田 太郎）"


def test_format_name():
    assert format_name("山田", "太郎") == "山田\u3000太郎"
    assert format_name(*parse_person_name("山田  太郎")) == "山田　太郎"


# ----------------------------------------------------------------- kana name

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ヤマダ タロウ", ("ヤマダ", "タロウ")),
        ("やまだ たろう", ("ヤマダ", "タロウ")),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", ("ヤマダ", "タロウ")),
        ("やまだ　ﾀﾛｳ", ("ヤマダ", "タロウ")),
        ("サトウ キョウコ", ("サトウ", "キョウコ")),  # small kana kept
        ("ゆうき ゆうこー", ("ユウキ", "ユウコー")),
        ("ヴァン・デル メイヤー", ("ヴァン・デル", "メイヤー")),
        ("ゔぁん ぐっど", ("ヴァン", "グッド")),
        ("ｻｻｷ ﾐﾂｺﾞ", ("ササキ", "ミツゴ")),
        ("カ゛ン ハ゜ン", ("ガン", "パン")),  # spacing marks compose
    ],
)
def test_parse_kana_name_ok(raw, expected):
    assert parse_kana_name(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("ヤマダタロウ", "セイとメイの間にスペースを入れてください"),
        ("やまだたろう", "セイとメイの間にスペース"),
        ("", "フリガナを入力してください"),
        ("ヤマダ タ ロウ", "1か所だけ"),
        ("山田 太郎", "漢字"),
        ("ヤマダ 太郎", "漢字"),
        ("yamada taro", "アルファベット"),
        ("ヤマダ タロウ1", "数字"),
        ("ヤマダ タロウ!", "記号"),
        ("ヤマダ ー", "カタカナかひらがなで"),
        ("ア" * 31 + " タロウ", "30文字以内"),
    ],
)
def test_parse_kana_name_refused(raw, fragment):
    assert fragment in refusal(parse_kana_name, raw)


# --------------------------------------------------------------- 全銀 kana

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        ("やまだ　たろう", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        ("ヤマダ　　 タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        ("パン", "ﾊﾟﾝ"),
        ("ガッコウ", "ｶﾞﾂｺｳ"),  # small ッ → ﾂ
        ("ァィゥェォ", "ｱｲｳｴｵ"),
        ("キャキュキョ", "ｷﾔｷﾕｷﾖ"),
        ("クヮ", "ｸﾜ"),
        ("ヵヶ", "ｶｹ"),
        ("ヴィ", "ｳﾞｲ"),
        ("ヷ", "ﾜﾞ"),
        ("ヰヱヲ", "ｲｴｦ"),
        ("ユーコ", "ﾕ-ｺ"),  # long vowel → '-'
        ("ｽｰﾊﾟｰ", "ｽ-ﾊﾟ-"),
        ("ジョン・スミス", "ｼﾞﾖﾝ.ｽﾐｽ"),  # middle dot → '.'
        ("abc xyz", "ABC XYZ"),
        ("ＡＢＣ１２３", "ABC123"),
        ("カ)ヤマダ", "ｶ)ﾔﾏﾀﾞ"),
        ("(カ) ヤマダ/ショウテン.", "(ｶ) ﾔﾏﾀﾞ/ｼﾖｳﾃﾝ."),
        ("「ア」,イ", "｢ｱ｣,ｲ"),
        ("ヤマダ―タロウ", "ﾔﾏﾀﾞ-ﾀﾛｳ"),
        ("  ﾔﾏﾀﾞ  ", "ﾔﾏﾀﾞ"),
    ],
)
def test_to_zengin_kana(raw, expected):
    assert to_zengin_kana(raw) == expected


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("山田 太郎", "漢字"),
        ("ヤマダ★", "使えない文字"),
        ("ヤマダ@", "使えない文字"),
        ("ヤマダ!", "使えない文字"),
        ("Émile", "使えない文字"),
        ("", "口座名義をカタカナで"),
        ("   ", "口座名義をカタカナで"),
    ],
)
def test_to_zengin_kana_refused(raw, fragment):
    assert fragment in refusal(to_zengin_kana, raw)


def test_to_zengin_kana_output_alphabet_is_cp932_single_byte():
    out = to_zengin_kana("ガッコウ・ヴィ (ABC) 123-/.,「」")
    # 全銀 files are cp932; every character must be single-byte there.
    assert len(out.encode("cp932")) == len(out)


# ---------------------------------------------------------------- hypothesis

@FAST
@given(st.text())
def test_clean_never_raises(s):
    out = clean(s)
    assert out == out.strip()
    assert "  " not in out
    assert clean(out) == out  # idempotent


@FAST
@given(st.text())
def test_digits_and_hyphens_never_raises(s):
    digits_and_hyphens(s)


@pytest.mark.parametrize("parser", [parse_person_name, parse_kana_name, to_zengin_kana])
@FAST
@given(s=st.text())
def test_parsers_only_raise_invalid_input(parser, s):
    raises_only_invalid_input(parser, s)


@FAST
@given(st.text(alphabet="やまだたろうヤマダタロウｶﾞｯｷｬ ー・　ゔぁ", min_size=1))
def test_kana_roundtrip_into_zengin(s):
    """Whatever parse_kana_name accepts, to_zengin_kana accepts too."""
    try:
        family, given_ = parse_kana_name(s)
    except InvalidInput:
        return
    z = to_zengin_kana(format_name(family, given_))
    assert " " in z and len(z.encode("cp932")) == len(z)
