"""Bank-account answers: 金融機関 / 支店 lookup (zengin-code data), 種目,
口座番号, ゆうちょ 記号・番号 → 全銀 conversion and the own-name check.

Stored forms: bank code 4 digits, branch code 3 digits, account type one of
:data:`ACCOUNT_TYPES` (普通/当座/貯蓄; :data:`ACCOUNT_TYPE_CODES` gives the
全銀 digit), account number 7 digits zero-padded, holder name as returned by
:func:`~domain.normalize.to_zengin_kana` (half-width 全銀 kana).

The zengin-code package loads its whole data set (≈1,100 banks, ≈29,000
branches) when first imported, so it is imported lazily on the first lookup
and indexed once.  Parsers raise only :class:`InvalidInput`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from domain.normalize import (
    InvalidInput,
    clean,
    digits_and_hyphens,
    hira_to_kata,
    to_zengin_kana,
)

__all__ = [
    "InvalidInput",
    "Bank",
    "Branch",
    "YUCHO_BANK_CODE",
    "ACCOUNT_TYPES",
    "ACCOUNT_TYPE_CODES",
    "find_bank",
    "find_branch",
    "get_bank",
    "get_branch",
    "parse_account_type",
    "parse_account_number",
    "convert_yucho",
    "parse_yucho",
    "holder_matches_own_name",
]

YUCHO_BANK_CODE = "9900"
ACCOUNT_TYPES: tuple[str, ...] = ("普通", "当座", "貯蓄")
ACCOUNT_TYPE_CODES: dict[str, str] = {"普通": "1", "当座": "2", "貯蓄": "4"}
"""Account type → 預金種目 digit used in 全銀 transfer files."""


@dataclass(frozen=True)
class Bank:
    """A financial institution as listed by zengin-code (name without 銀行)."""

    code: str  # 4 digits
    name: str  # e.g. みずほ, 三菱ＵＦＪ, 網走信金 (as in the zengin data)
    kana: str  # full-width katakana as in the data, e.g. ミズホ


@dataclass(frozen=True)
class Branch:
    """A branch of one bank as listed by zengin-code."""

    code: str  # 3 digits
    name: str
    kana: str


# ---------------------------------------------------------------------------
# data loading / indexing
# ---------------------------------------------------------------------------

_SMALL_FULL = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")
_KEY_DROP_RE = re.compile(r"[\s\-‐・.．ー－、,，()（）]")


def _key(text: str) -> str:
    """Search key: width/kana/case folded, small kana made large (the data's
    kana are written with large kana: トウキヨウ), punctuation dropped."""
    s = hira_to_kata(clean(text)).translate(_SMALL_FULL).casefold()
    return _KEY_DROP_RE.sub("", s)


@dataclass(frozen=True)
class _Entry:
    item: Any  # Bank | Branch
    keys: tuple[str, ...]  # name key, kana key, roma


_lock = threading.Lock()
_banks: dict[str, Bank] | None = None
_bank_entries: list[_Entry] | None = None
_raw: dict[str, Any] | None = None
_branch_cache: dict[str, tuple[dict[str, Branch], list[_Entry]]] = {}


def _load() -> tuple[dict[str, Bank], list[_Entry]]:
    global _banks, _bank_entries, _raw
    if _banks is None or _bank_entries is None:
        with _lock:
            if _banks is None or _bank_entries is None:
                import zengin_code  # heavy: reads every data file on import

                raw = dict(zengin_code.Bank.all)
                banks: dict[str, Bank] = {}
                entries: list[_Entry] = []
                for code in sorted(raw):
                    zb = raw[code]
                    bank = Bank(code=zb.code, name=zb.name, kana=zb.kana)
                    banks[code] = bank
                    entries.append(
                        _Entry(bank, (_key(zb.name), _key(zb.kana), (zb.roma or "").casefold()))
                    )
                _raw = raw
                _bank_entries = entries
                _banks = banks
    return _banks, _bank_entries


def _branches_of(bank_code: str) -> tuple[dict[str, Branch], list[_Entry]]:
    cached = _branch_cache.get(bank_code)
    if cached is not None:
        return cached
    _load()
    assert _raw is not None
    zb = _raw[bank_code]
    by_code: dict[str, Branch] = {}
    entries: list[_Entry] = []
    for code in sorted(zb.branches):
        br = zb.branches[code]
        branch = Branch(code=br.code, name=br.name, kana=br.kana)
        by_code[code] = branch
        entries.append(
            _Entry(branch, (_key(br.name), _key(br.kana), (br.roma or "").casefold()))
        )
    _branch_cache[bank_code] = (by_code, entries)
    return by_code, entries


def _rank(entries: list[_Entry], variants: set[str], limit: int | None) -> list[Any]:
    """Exact matches first, then prefix, then contains; code order within."""
    tiers: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for e in entries:
        keys = [k for k in e.keys if k]
        if any(k == v for k in keys for v in variants):
            tiers[0].append(e.item)
        elif any(k.startswith(v) for k in keys for v in variants):
            tiers[1].append(e.item)
        elif any(v in k for k in keys for v in variants):
            tiers[2].append(e.item)
    result = tiers[0] + tiers[1] + tiers[2]
    return result if limit is None else result[: max(limit, 0)]


def get_bank(code: str) -> Bank | None:
    """Bank by stored 4-digit code, or None."""
    banks, _ = _load()
    return banks.get(code) if isinstance(code, str) else None


def get_branch(bank_code: str, branch_code: str) -> Branch | None:
    """Branch by stored codes, or None."""
    if get_bank(bank_code) is None or not isinstance(branch_code, str):
        return None
    by_code, _ = _branches_of(bank_code)
    return by_code.get(branch_code)


# ---------------------------------------------------------------------------
# bank / branch search
# ---------------------------------------------------------------------------

_BANK_EXAMPLE = "（例：みずほ、三菱UFJ、0001）"
_BRANCH_EXAMPLE = "（例：新宿、001）"

# Long official suffixes → the short forms the zengin data uses.
_NAME_SUFFIXES = (
    ("信用農業協同組合連合会", "信連"),
    ("農業協同組合", "農協"),
    ("漁業協同組合", "漁協"),
    ("信用金庫", "信金"),
    ("信用組合", "信組"),
    ("労働金庫", "労金"),
    ("銀行", ""),
)
_KANA_SUFFIXES = (
    ("ノウギヨウキヨウドウクミアイ", "ノウキヨウ"),
    ("シンヨウキンコ", "シンキン"),
    ("シンヨウクミアイ", "シンクミ"),
    ("ロウドウキンコ", "ロウキン"),
    ("ギンコウ", ""),
)


def _only_digits(text: str) -> str | None:
    s = re.sub(r"[\s\-]", "", digits_and_hyphens(text))
    return s if s and re.fullmatch(r"[0-9]+", s) else None


def _bank_variants(query: str) -> set[str]:
    k = _key(query)
    variants = {k}
    for long, short in _NAME_SUFFIXES + _KANA_SUFFIXES:
        kl = _key(long)
        if k.endswith(kl):
            variants.add(k[: -len(kl)] + _key(short) if short else k[: -len(kl)])
    if k.startswith("ja") and len(k) > 2:  # JAあいら → あいら農協
        rest = k[2:]
        variants.update({rest + _key("農協"), rest + _key("ノウキヨウ")})
    return {v for v in variants if v}


def find_bank(query: str, limit: int | None = None) -> list[Bank]:
    """Find banks by 4-digit code (any width) or by name / kana.

    Name search folds width, hiragana/katakana and small kana, and maps long
    official names to the zengin short forms (みずほ銀行 → みずほ,
    ○○信用金庫 → ○○信金, JA○○ → ○○農協).  Results: exact matches on name
    or kana first, then prefix, then substring matches, each in code order.
    An unknown code or name gives ``[]`` (the caller says "not found");
    an empty answer or a code of the wrong length raises InvalidInput.
    """
    digits = _only_digits(query)
    banks, entries = _load()
    if digits is not None:
        if len(digits) != 4:
            raise InvalidInput(f"金融機関コードは4桁の数字です。銀行名でも検索できます{_BANK_EXAMPLE}")
        bank = banks.get(digits)
        return [bank] if bank else []
    variants = _bank_variants(query)
    if not variants:
        raise InvalidInput(f"銀行名か4桁の金融機関コードを入力してください{_BANK_EXAMPLE}")
    return _rank(entries, variants, limit)


def _normalise_bank_code(bank_code: str) -> str:
    digits = _only_digits(bank_code) if isinstance(bank_code, str) else None
    banks, _ = _load()
    if digits is None or len(digits) != 4 or digits not in banks:
        raise InvalidInput(f"金融機関が見つかりません。もう一度、銀行を選んでください{_BANK_EXAMPLE}")
    return digits


def find_branch(bank_code: str, query: str, limit: int | None = None) -> list[Branch]:
    """Find branches of ``bank_code`` by 3-digit code (any width) or name/kana.

    「支店」 at the end of the query is ignored (the data has 新宿, not 新宿支店).
    Same ordering and error rules as :func:`find_bank`.
    """
    code = _normalise_bank_code(bank_code)
    by_code, entries = _branches_of(code)
    q = clean(query)
    for suffix in ("支店", "してん", "シテン"):
        if q.endswith(suffix) and len(q) > len(suffix):
            q = q[: -len(suffix)]
            break
    digits = _only_digits(q)
    if digits is not None:
        if len(digits) != 3:
            raise InvalidInput(f"支店コードは3桁の数字です。支店名でも検索できます{_BRANCH_EXAMPLE}")
        branch = by_code.get(digits)
        return [branch] if branch else []
    k = _key(q)
    variants = {k}
    if k.endswith("店") and len(k) > 1 and not k.endswith("本店"):
        variants.add(k[:-1])  # ゆうちょ: 〇一八店 → 〇一八
    variants.discard("")
    if not variants:
        raise InvalidInput(f"支店名か3桁の支店コードを入力してください{_BRANCH_EXAMPLE}")
    return _rank(entries, variants, limit)


# ---------------------------------------------------------------------------
# account type / number
# ---------------------------------------------------------------------------

_ACCOUNT_TYPE_WORDS = {
    "普通": ("1", "普", "普通", "普通預金", "ふつう", "ふつうよきん", "総合", "総合口座"),
    "当座": ("2", "当", "当座", "当座預金", "とうざ", "とうざよきん"),
    "貯蓄": ("4", "貯", "貯蓄", "貯蓄預金", "ちょちく", "ちょちくよきん"),
}
_ACCOUNT_TYPE_LOOKUP = {
    hira_to_kata(w): t for t, words in _ACCOUNT_TYPE_WORDS.items() for w in words
}


def parse_account_type(text: str) -> str:
    """預金種目 → 普通 / 当座 / 貯蓄.

    Accepts the 全銀 digits 1/2/4, kanji (普通預金 …), hiragana / katakana
    (ふつう, ﾄｳｻﾞ) and 総合口座 (which is a 普通 account).
    """
    s = hira_to_kata(clean(text)).replace(" ", "")
    result = _ACCOUNT_TYPE_LOOKUP.get(s)
    if result is None:
        raise InvalidInput("口座の種類は「普通」「当座」「貯蓄」のどれかで入力してください")
    return result


def parse_account_number(text: str) -> str:
    """口座番号 (1–7 digits, any width, hyphens/spaces ignored) → 7 digits
    zero-padded, the width 全銀 files use."""
    s = re.sub(r"[\s\-]", "", digits_and_hyphens(text))
    if not s:
        raise InvalidInput("口座番号を数字で入力してください（例：1234567）")
    if not re.fullmatch(r"[0-9]+", s):
        raise InvalidInput("口座番号は数字だけで入力してください（例：1234567）")
    if len(s) > 7:
        raise InvalidInput(
            f"口座番号は7桁までです（入力は{len(s)}桁でした）。"
            "ゆうちょ銀行の記号・番号の場合は「ゆうちょ」を選んでください"
        )
    if set(s) == {"0"}:
        raise InvalidInput("口座番号をご確認ください（例：1234567）")
    return s.zfill(7)


# ---------------------------------------------------------------------------
# ゆうちょ
# ---------------------------------------------------------------------------

_YUCHO_EXAMPLE = "（例：14030-12345671）"


def _digits_field(text: str, what: str) -> str:
    s = re.sub(r"[\s\-]", "", digits_and_hyphens(text)) if isinstance(text, str) else ""
    if not s:
        raise InvalidInput(f"ゆうちょ銀行の{what}を数字で入力してください{_YUCHO_EXAMPLE}")
    if not re.fullmatch(r"[0-9]+", s):
        raise InvalidInput(f"ゆうちょ銀行の{what}は数字だけで入力してください{_YUCHO_EXAMPLE}")
    return s


def convert_yucho(kigou: str, bangou: str) -> tuple[str, str, str]:
    """ゆうちょ 記号・番号 → 全銀 (branch code, account type, account number).

    Other banks' transfers (and 全銀 files) address ゆうちょ accounts by a
    branch/number, not by 記号・番号 (Japan Post's published rule):

    * 記号 1xxxx (通常貯金): branch = 記号's 2nd–3rd digits + "8"
      (14030 → 408), 普通, number = 番号 without its last digit, zero-padded
      to 7 (12345671 → 1234567);
    * 記号 0xxxx (振替口座): branch = 2nd–3rd digits + "9" (00580 → 059),
      当座, number = 番号 zero-padded to 7 (654321 → 0654321).

    記号 must be 5 digits, 番号 at most 8 digits, and the branch must exist.
    """
    k = _digits_field(kigou, "記号")
    b = _digits_field(bangou, "番号")
    if len(k) != 5:
        raise InvalidInput(f"記号は5桁の数字です（入力は{len(k)}桁でした）。通帳をご確認ください{_YUCHO_EXAMPLE}")
    if len(b) > 8:
        raise InvalidInput(f"番号は8桁までです（入力は{len(b)}桁でした）。通帳をご確認ください{_YUCHO_EXAMPLE}")
    if k[0] == "1":
        if len(b) < 2:
            raise InvalidInput(f"番号をご確認ください。通常貯金の番号はふつう8桁です{_YUCHO_EXAMPLE}")
        branch, acct_type, number = k[1:3] + "8", "普通", b[:-1].zfill(7)
    elif k[0] == "0":
        if len(b) > 7:
            raise InvalidInput(
                f"記号が0で始まる振替口座の番号は7桁までです（入力は{len(b)}桁でした）。"
                "通帳をご確認ください（例：00580-654321）"
            )
        branch, acct_type, number = k[1:3] + "9", "当座", b.zfill(7)
    else:
        raise InvalidInput(f"記号は「1」か「0」で始まる5桁の数字です。通帳をご確認ください{_YUCHO_EXAMPLE}")
    if set(number) == {"0"}:
        raise InvalidInput(f"番号をご確認ください{_YUCHO_EXAMPLE}")
    if get_branch(YUCHO_BANK_CODE, branch) is None:
        raise InvalidInput(f"記号「{k}」に対応する店が見つかりません。記号をご確認ください{_YUCHO_EXAMPLE}")
    return branch, acct_type, number


def parse_yucho(text: str) -> tuple[str, str, str]:
    """Parse one typed ゆうちょ 記号・番号 and convert it (see convert_yucho).

    Accepts 「14030-12345671」, 「14030 12345671」, 「記号14030 番号12345671」,
    13 digits run together for 通常貯金, the 振替 form 「00580-6-654321」 (the
    middle check digit is ignored), any width and any hyphen.
    """
    s = digits_and_hyphens(text)
    s = re.sub(r"記号|番号|[:：]", " ", s)
    groups = [g for g in re.split(r"[\s\-]+", s) if g]
    if not groups:
        raise InvalidInput(f"ゆうちょ銀行の記号と番号を入力してください{_YUCHO_EXAMPLE}")
    if not all(re.fullmatch(r"[0-9]+", g) for g in groups):
        raise InvalidInput(f"記号と番号は数字で、間に「-」を入れて入力してください{_YUCHO_EXAMPLE}")
    if len(groups) == 2:
        return convert_yucho(groups[0], groups[1])
    if len(groups) == 3 and len(groups[0]) == 5 and groups[0][0] == "0" and len(groups[1]) == 1:
        return convert_yucho(groups[0], groups[2])
    if len(groups) == 1 and len(groups[0]) == 13 and groups[0][0] == "1":
        return convert_yucho(groups[0][:5], groups[0][5:])
    raise InvalidInput(f"記号（5桁）と番号の間に「-」を入れて入力してください{_YUCHO_EXAMPLE}")


# ---------------------------------------------------------------------------
# own-name check
# ---------------------------------------------------------------------------

def holder_matches_own_name(holder_kana: str, expert_kana: str) -> bool:
    """True if the account holder is the expert (program rule: fees are paid
    only to an account in the expert's own name).

    Both sides go through :func:`to_zengin_kana` (half-width, small kana made
    large, hiragana accepted) and spaces are ignored, because passbooks and
    bank systems differ only in those respects.  Returns False (never
    raises) when either side is not valid 全銀 kana; validate the typed
    holder with ``to_zengin_kana`` first to give the user a specific message.
    """
    try:
        a = to_zengin_kana(holder_kana).replace(" ", "")
        b = to_zengin_kana(expert_kana).replace(" ", "")
    except InvalidInput:
        return False
    return bool(a) and a == b
