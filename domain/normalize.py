"""Japanese text normalisation for what users type into the LINE chat.

Users type on phones and PCs with every IME setting imaginable: full-width
digits, half-width katakana, ideographic spaces, five kinds of dash.  Every
parser in the conversation flows starts from the helpers here so that the
same input always ends up in the same stored form, and so that a refusal is
always an :class:`InvalidInput` carrying a short, polite Japanese sentence the
bot can send back as is.

Pure Python, no Flask / DB / LINE imports.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "InvalidInput",
    "clean",
    "digits_and_hyphens",
    "hira_to_kata",
    "format_name",
    "parse_person_name",
    "parse_kana_name",
    "to_zengin_kana",
    "NAME_PART_MAX",
    "KANA_PART_MAX",
]


class InvalidInput(ValueError):
    """The user's answer cannot be accepted.

    ``str(exc)`` (also ``exc.message``) is a complete, polite Japanese
    sentence saying what was wrong and how to type it; the conversation layer
    sends it to the user verbatim.  Parsers raise nothing else for any ``str``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------
# clean / digits_and_hyphens
# ---------------------------------------------------------------------------

# CJK compatibility ideographs (e.g. U+FA19 神) are folded by NFKC into their
# unified forms.  In a person's name that silently changes the glyph the user
# chose, so they are kept as typed.
_CJK_COMPAT_RE = re.compile("([\uf900-\ufaff\U0002f800-\U0002fa1f]+)")

# Stand-alone (spacing) voiced/semi-voiced marks: NFKC turns them into
# "space + combining mark", which would split "カ゛" into two words.  Making
# them combining first lets NFKC compose "カ゛" into "ガ".
_SPACING_MARKS = str.maketrans({"\u309b": "\u3099", "\u309c": "\u309a"})

_WS_RE = re.compile(r"\s+")


def _nfkc_keep_compat_ideographs(text: str) -> str:
    parts = _CJK_COMPAT_RE.split(text)
    # split() with one capture group: odd indexes are the kept ideographs.
    return "".join(
        part if i % 2 else unicodedata.normalize("NFKC", part)
        for i, part in enumerate(parts)
    )


def clean(text: str) -> str:
    """Normalise free text typed by a user; the first step of every parser.

    * NFKC: full-width ASCII → ASCII, half-width katakana → full-width
      katakana (with dakuten composed: ｶﾞ → ガ), ① → 1, ㍻ → 平成.
      Full-width katakana stays full-width (NFKC never narrows it).
      CJK compatibility ideographs are left as typed (names).
    * invisible format characters (zero-width space, BOM, …) and control
      characters are dropped;
    * any run of whitespace (ASCII, U+3000, tab, NBSP, newline) becomes one
      ASCII space, and the ends are trimmed.

    Never raises for a ``str``.
    """
    if not isinstance(text, str):  # defensive: callers pass LINE text
        text = "" if text is None else str(text)
    text = text.translate(_SPACING_MARKS)
    text = _nfkc_keep_compat_ideographs(text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf" or cat == "Cs" or (cat == "Cc" and not ch.isspace()):
            continue
        out.append(ch)
    return _WS_RE.sub(" ", "".join(out)).strip()


# Every dash / minus look-alike a Japanese IME or a copy-paste can produce.
# (Applied after NFKC, so ｰ is already ー and － is already '-'.)
_DASHES = (
    "\u002d"  # - hyphen-minus
    "\u00ad"  # soft hyphen
    "\u02d7"  # ˗ modifier letter minus
    "\u2010"  # ‐ hyphen
    "\u2011"  # ‑ non-breaking hyphen
    "\u2012"  # ‒ figure dash
    "\u2013"  # – en dash
    "\u2014"  # — em dash
    "\u2015"  # ― horizontal bar
    "\u2043"  # ⁃ hyphen bullet
    "\u2212"  # − minus sign
    "\u2500"  # ─ box drawings light horizontal (IME "けいせん")
    "\u2501"  # ━ box drawings heavy horizontal
    "\u2796"  # ➖ heavy minus sign
    "\ufe58"  # ﹘ small em dash
    "\ufe63"  # ﹣ small hyphen-minus
    "\uff0d"  # － full-width hyphen-minus
)
_DASH_RE = re.compile("[" + re.escape(_DASHES) + "]")
# ー (long vowel mark, also what ｰ becomes) and 一 (kanji "one", a common
# IME mis-conversion of a dash) count as hyphens only between digits.
_DIGIT_DASH_RE = re.compile(r"(?<=[0-9])( ?)[\u30fc\u4e00]( ?)(?=[0-9])")


def digits_and_hyphens(text: str) -> str:
    """:func:`clean`, then turn every hyphen/dash/minus look-alike into '-'.

    For numeric answers (phone, postal code, dates, account numbers): users
    type 090ー1234ー5678, ０９０－１２３４－５６７８, 090−1234−5678 … and all of
    them mean the same thing.  The long-vowel mark ー (and the kanji 一) are
    only treated as a hyphen between two digits, so kana text is untouched.
    Never raises for a ``str``.
    """
    text = clean(text)
    text = _DASH_RE.sub("-", text)
    return _DIGIT_DASH_RE.sub(r"\1-\2", text)


# ---------------------------------------------------------------------------
# kana helpers
# ---------------------------------------------------------------------------

def hira_to_kata(text: str) -> str:
    """Hiragana → katakana (ぁ–ゖ, ゝゞ); everything else unchanged.

    フリガナ and bank kana are stored in katakana, but phone keyboards
    default to hiragana; this is the one conversion all kana parsers share.
    """
    out = []
    for ch in text:
        o = ord(ch)
        if 0x3041 <= o <= 0x3096 or o in (0x309D, 0x309E):
            out.append(chr(o + 0x60))
        else:
            out.append(ch)
    return "".join(out)


def _is_katakana(ch: str) -> bool:
    # ァ..ヺ (incl. small kana, ヴ, ヵ, ヶ, ヷ..ヺ), ・ ー ヽ ヾ
    return "\u30a1" <= ch <= "\u30fe"


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------

NAME_PART_MAX = 20
KANA_PART_MAX = 30

_NAME_EXAMPLE = "（例：山田 太郎）"
_KANA_EXAMPLE = "（例：ヤマダ タロウ）"


def format_name(family: str, given: str) -> str:
    """Stored / displayed form of a name: family + ONE U+3000 + given.

    One canonical form makes names comparable (e.g. the 就任承諾書 signature
    check) and looks right in Japanese documents.
    """
    return f"{family}\u3000{given}"


def _split_two(text: str, *, what: str, example: str) -> tuple[str, str]:
    if not text:
        raise InvalidInput(f"{what}を入力してください{example}")
    parts = text.split(" ")
    if len(parts) == 1:
        if what == "フリガナ":
            raise InvalidInput(f"セイとメイの間にスペースを入れてください{example}")
        raise InvalidInput(f"姓と名の間にスペースを入れてください{example}")
    if len(parts) > 2:
        if what == "フリガナ":
            raise InvalidInput(
                "スペースはセイとメイの間の1か所だけにしてください。"
                f"ミドルネームはメイに続けて入力してください{example}"
            )
        raise InvalidInput(
            "スペースは姓と名の間の1か所だけにしてください。"
            f"ミドルネームは名に続けて入力してください{example}"
        )
    return parts[0], parts[1]


def _name_char_ok(ch: str) -> bool:
    if ch == "\u30fb":  # ・ (foreign names written in katakana)
        return True
    cat = unicodedata.category(ch)
    # letters of any script (kanji, kana, 々, ー, latin…) and combining marks
    # (variation selectors for 異体字, dakuten); no digits, no symbols.
    return cat[0] in ("L", "M")


def parse_person_name(text: str) -> tuple[str, str]:
    """Parse 氏名 into (family, given).

    Any width / number of spaces between the two parts is accepted; exactly
    two parts are required because documents (委嘱状, 全銀 files) need the
    family and given name separately.  Digits and symbols are refused; each
    part is at most :data:`NAME_PART_MAX` characters.  Store with
    :func:`format_name`.
    """
    text = clean(text)
    family, given = _split_two(text, what="お名前", example=_NAME_EXAMPLE)
    for part in (family, given):
        bad = sorted({ch for ch in part if not _name_char_ok(ch)})
        if bad:
            if any(unicodedata.category(c) == "Nd" or c.isdigit() for c in bad):
                raise InvalidInput(
                    f"お名前に数字は使えません。姓と名を入力してください{_NAME_EXAMPLE}"
                )
            shown = "".join(bad[:5])
            raise InvalidInput(
                f"お名前に記号（{shown}）は使えません。"
                f"姓と名だけを入力してください{_NAME_EXAMPLE}"
            )
        if part.strip("\u30fb") == "" or all(
            unicodedata.category(c)[0] == "M" or c == "\u30fb" for c in part
        ):
            raise InvalidInput(f"姓と名を文字で入力してください{_NAME_EXAMPLE}")
        if len(part) > NAME_PART_MAX:
            raise InvalidInput(
                f"姓・名はそれぞれ{NAME_PART_MAX}文字以内で入力してください{_NAME_EXAMPLE}"
            )
    return family, given


def parse_kana_name(text: str) -> tuple[str, str]:
    """Parse フリガナ into (セイ, メイ), both full-width katakana.

    Hiragana is converted to katakana and half-width katakana to full-width
    (users type whichever their keyboard gives).  Accepts ー, ヴ, small kana
    and the middle dot ・.  Kanji, latin letters, digits and symbols are
    refused with a message; the space between セイ and メイ is required.
    Each part is at most :data:`KANA_PART_MAX` characters.  Store with
    :func:`format_name`.
    """
    text = hira_to_kata(clean(text))
    family, given = _split_two(text, what="フリガナ", example=_KANA_EXAMPLE)
    for part in (family, given):
        bad = [ch for ch in part if not _is_katakana(ch)]
        if bad:
            if any(c.isdigit() for c in bad):
                kind = "数字"
            elif any(unicodedata.name(c, "").startswith("CJK") for c in bad):
                kind = "漢字"
            elif any(c.isascii() and c.isalpha() for c in bad):
                kind = "アルファベット"
            else:
                kind = "記号など"
            raise InvalidInput(
                f"フリガナに{kind}は使えません。カタカナかひらがなで入力してください{_KANA_EXAMPLE}"
            )
        if not any(_is_katakana(c) and c not in "\u30fb\u30fc\u30fd\u30fe" for c in part):
            raise InvalidInput(
                f"フリガナをカタカナかひらがなで入力してください{_KANA_EXAMPLE}"
            )
        if len(part) > KANA_PART_MAX:
            raise InvalidInput(
                f"セイ・メイはそれぞれ{KANA_PART_MAX}文字以内で入力してください{_KANA_EXAMPLE}"
            )
    return family, given


# ---------------------------------------------------------------------------
# 全銀 kana
# ---------------------------------------------------------------------------

def _build_half_width_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for o in range(0xFF66, 0xFF9E):  # ｦ .. ﾝ (incl. small ｧ..ｯ and ｰ)
        half = chr(o)
        full = unicodedata.normalize("NFKC", half)
        table.setdefault(full, half)
    return table


_HALF = _build_half_width_table()
# 全銀 has no small kana: they are written large.
_SMALL_TO_LARGE = str.maketrans(
    "ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ"
)
# Obsolete kana that 全銀 writes with their modern sound.
_OBSOLETE = str.maketrans({"ヰ": "イ", "ヱ": "エ"})

_ZENGIN_SYMBOLS = {
    " ": " ",
    "(": "(",
    ")": ")",
    ".": ".",
    "-": "-",
    "/": "/",
    ",": ",",
    "\u300c": "\uff62",  # 「 → ｢
    "\u300d": "\uff63",  # 」 → ｣
    "\u30fc": "-",  # ー long vowel → '-'
    "\u30fb": ".",  # ・ middle dot → '.' (全銀 convention)
    "\u3099": "\uff9e",  # combining dakuten → ﾞ
    "\u309a": "\uff9f",  # combining handakuten → ﾟ
}

ZENGIN_ALLOWED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ().-/,\uff62\uff63\uff9e\uff9f"
    + "".join(chr(o) for o in range(0xFF71, 0xFF9E))  # ｱ..ﾝ
    + "\uff66"  # ｦ
)


def to_zengin_kana(text: str) -> str:
    """Normalise an account holder name to the 全銀 character set.

    Bank transfer files (全銀フォーマット) only carry half-width katakana
    without small kana, A–Z, 0–9, space and a few symbols, and banks compare
    the holder name in that form.  So: hiragana / full-width / half-width
    input → half-width katakana (ｱ), small kana made large (ァ→ｱ, ッ→ﾂ,
    ャ→ﾔ, ヮ→ﾜ), dakuten as separate marks (ガ→ｶﾞ, ヴ→ｳﾞ), ー → '-',
    ・ → '.', latin upper-cased, spaces collapsed to one half-width space.
    Anything else (kanji, emoji, other symbols) → :class:`InvalidInput`.
    """
    text = hira_to_kata(clean(text))
    # NFD splits ガ into カ + U+3099 so the mark can become ﾞ.
    text = unicodedata.normalize("NFD", text)
    text = text.translate(_SMALL_TO_LARGE).translate(_OBSOLETE)
    text = _DASH_RE.sub("-", text)
    out: list[str] = []
    bad: list[str] = []
    for ch in text:
        if ch in _ZENGIN_SYMBOLS:
            out.append(_ZENGIN_SYMBOLS[ch])
        elif ch in _HALF:
            out.append(_HALF[ch])
        elif "a" <= ch <= "z":
            out.append(ch.upper())
        elif ch in ZENGIN_ALLOWED:
            out.append(ch)
        else:
            bad.append(ch)
    if bad:
        shown = unicodedata.normalize("NFC", "".join(dict.fromkeys(bad)))[:5]
        if any(unicodedata.name(c, "").startswith("CJK") for c in bad):
            raise InvalidInput(
                f"口座名義に漢字（{shown}）は使えません。"
                "通帳に書かれているとおりカタカナで入力してください（例：ヤマダ タロウ）"
            )
        raise InvalidInput(
            f"口座名義に使えない文字（{shown}）があります。"
            "カタカナで入力してください（例：ヤマダ タロウ）"
        )
    result = re.sub(" +", " ", "".join(out)).strip()
    if not result:
        raise InvalidInput("口座名義をカタカナで入力してください（例：ヤマダ タロウ）")
    return result
