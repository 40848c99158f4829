"""Validators for profile answers: birth date (西暦/和暦), phone, e-mail,
postal code and prefectures.

Each ``parse_*`` returns the normalised value to store, or raises
:class:`~domain.normalize.InvalidInput` whose message tells the user,
in Japanese, what was wrong and how to type it.  They raise nothing else for
any ``str``.  Pure Python: no Flask, DB or LINE imports.
"""

from __future__ import annotations

import re
from datetime import date

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from domain.normalize import InvalidInput, clean, digits_and_hyphens

__all__ = [
    "InvalidInput",
    "MIN_AGE",
    "MAX_AGE",
    "ERAS",
    "age_on",
    "to_wareki",
    "parse_birthdate",
    "show_birthdate",
    "parse_phone",
    "format_phone_display",
    "parse_email",
    "parse_postal_code",
    "PREFECTURES",
    "parse_prefecture",
    "REGIONS",
    "PREFECTURE_REGION",
    "parse_prefectures",
]

# ---------------------------------------------------------------------------
# birth date
# ---------------------------------------------------------------------------

MIN_AGE = 18
MAX_AGE = 100

# (name, first day, last day or None).  Boundaries are the official ones; a
# date outside its era's range is refused with the correct era spelled out.
ERAS: tuple[tuple[str, date, date | None], ...] = (
    ("大正", date(1912, 7, 30), date(1926, 12, 24)),
    ("昭和", date(1926, 12, 25), date(1989, 1, 7)),
    ("平成", date(1989, 1, 8), date(2019, 4, 30)),
    ("令和", date(2019, 5, 1), None),
)
_ERA_BY_NAME = {name: (start, end) for name, start, end in ERAS}
_ERA_ALIASES = {
    "大正": "大正", "大": "大正", "t": "大正",
    "昭和": "昭和", "昭": "昭和", "s": "昭和",
    "平成": "平成", "平": "平成", "h": "平成",
    "令和": "令和", "令": "令和", "r": "令和",
}

_DATE_EXAMPLE = "（例：1980年4月1日、1980/4/1、昭和55年4月1日）"

_SEP = r"(?:\s?[-/.]\s?|\s)"
_SEIREKI_RES = (
    re.compile(r"([0-9]{4})\s?年\s?([0-9]{1,2})\s?月\s?([0-9]{1,2})\s?日?"),
    re.compile(rf"([0-9]{{4}}){_SEP}([0-9]{{1,2}}){_SEP}([0-9]{{1,2}})"),
    re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"),
)
_ERA_NAMES = r"(大正|昭和|平成|令和|[大昭平令]|[tshr])"
_WAREKI_RES = (
    re.compile(
        rf"{_ERA_NAMES}\s?([0-9]{{1,2}}|元)\s?年\s?([0-9]{{1,2}})\s?月\s?([0-9]{{1,2}})\s?日?"
    ),
    re.compile(
        rf"{_ERA_NAMES}\s?([0-9]{{1,2}}|元){_SEP}([0-9]{{1,2}}){_SEP}([0-9]{{1,2}})"
    ),
    re.compile(rf"{_ERA_NAMES}([0-9]{{2}})([0-9]{{2}})([0-9]{{2}})"),
)
_TRAILING_WORDS_RE = re.compile(r"\s?(生まれ|うまれ|生)$")


def age_on(birth: date, today: date) -> int:
    """Age in completed years on ``today`` (Japanese civil reckoning).

    A 29 February birthday counts from 1 March in common years, which is
    what comparing (month, day) tuples gives.
    """
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def to_wareki(d: date) -> str:
    """``date`` → e.g. 「令和元年5月1日」 (used in messages and displays)."""
    for name, start, end in reversed(ERAS):
        if d >= start:
            n = d.year - start.year + 1
            y = "元" if n == 1 else str(n)
            return f"{name}{y}年{d.month}月{d.day}日"
    return f"{d.year}年{d.month}月{d.day}日"


def show_birthdate(iso: str | None) -> str:
    """「昭和55年4月1日（1980年4月1日）」: both calendars, so a slip in either shows."""
    try:
        d = date.fromisoformat(str(iso))
    except (TypeError, ValueError):
        return str(iso) if iso else "—"
    return f"{to_wareki(d)}（{d.year}年{d.month}月{d.day}日）"


def _make_date(y: int, m: int, d: int, shown: str) -> date:
    if not 1 <= m <= 12:
        raise InvalidInput(f"{m}月という月はありません。生年月日をご確認ください{_DATE_EXAMPLE}")
    try:
        return date(y, m, d)
    except ValueError:
        raise InvalidInput(
            f"{shown}という日付はありません。生年月日をご確認ください{_DATE_EXAMPLE}"
        ) from None


def _parse_date_text(text: str) -> date:
    s = digits_and_hyphens(text).lower()
    s = _TRAILING_WORDS_RE.sub("", s)
    if not s:
        raise InvalidInput(f"生年月日を入力してください{_DATE_EXAMPLE}")
    for rx in _SEIREKI_RES:
        m = rx.fullmatch(s)
        if m:
            y, mo, d = (int(g) for g in m.groups())
            if y < 1800:
                raise InvalidInput(f"生年月日をご確認ください{_DATE_EXAMPLE}")
            return _make_date(y, mo, d, f"{y}年{mo}月{d}日")
    for rx in _WAREKI_RES:
        m = rx.fullmatch(s)
        if m:
            era = _ERA_ALIASES[m.group(1)]
            n = 1 if m.group(2) == "元" else int(m.group(2))
            mo, d = int(m.group(3)), int(m.group(4))
            label = f"{era}{'元' if n == 1 else n}年{mo}月{d}日"
            if n == 0:
                raise InvalidInput(
                    f"{era}0年はありません。最初の年は「{era}元年」です{_DATE_EXAMPLE}"
                )
            start, end = _ERA_BY_NAME[era]
            result = _make_date(start.year + n - 1, mo, d, label)
            if result < start or (end is not None and result > end):
                if result >= ERAS[0][1]:
                    hint = f"{to_wareki(result)}（{result.year}年）"
                else:
                    hint = f"{result.year}年{result.month}月{result.day}日"
                if end is not None and result > end:
                    reason = f"{era}は{to_wareki(end)}までです"
                else:
                    reason = f"{era}は{to_wareki(start)}からです"
                raise InvalidInput(
                    f"{label}はありません（{reason}）。{hint}のことでしたら、そのように入力してください"
                )
            return result
    if re.fullmatch(r"[0-9]{2}\s?[-/.年]\s?[0-9]{1,2}\s?[-/.月]\s?[0-9]{1,2}\s?日?", s):
        raise InvalidInput(
            f"年は西暦4桁か、和暦（昭和・平成・令和）を付けて入力してください{_DATE_EXAMPLE}"
        )
    raise InvalidInput(f"生年月日を年・月・日の順に入力してください{_DATE_EXAMPLE}")


def parse_birthdate(text: str, today: date) -> date:
    """Parse 生年月日 typed in 西暦 or 和暦 and check the age range.

    Accepted: 1980-04-01, 1980/4/1, 1980.4.1, 1980年4月1日, 19800401 (any
    width); 昭和55年4月1日, S55.4.1, s55/4/1, H3-2-1, 平成元年1月8日, R1.5.1,
    令和元年5月1日, ㍼55年4月1日, S550401.  The era must contain the date
    (平成31年5月1日 is refused, naming 令和元年5月1日).  The applicant must be
    :data:`MIN_AGE`–:data:`MAX_AGE` years old on ``today`` (program rule).
    ``today`` is passed in (Asia/Tokyo date) so this stays pure and testable.
    """
    birth = _parse_date_text(text)
    if birth > today:
        raise InvalidInput(f"未来の日付になっています。生年月日をご確認ください{_DATE_EXAMPLE}")
    age = age_on(birth, today)
    if not MIN_AGE <= age <= MAX_AGE:
        raise InvalidInput(
            f"ご登録いただけるのは{MIN_AGE}歳以上{MAX_AGE}歳以下の方です"
            f"（入力された生年月日では{age}歳です）。生年月日をご確認ください"
        )
    return birth


# ---------------------------------------------------------------------------
# phone
# ---------------------------------------------------------------------------

_PHONE_EXAMPLE = "（例：090-1234-5678、03-1234-5678）"
_PHONE_STRIP_RE = re.compile(r"[\s\-().]")
_MOBILE_PREFIXES = ("060", "070", "080", "090")
_ACCEPTED_PHONE_TYPES = {
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.VOIP,  # 050 IP phones
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.PAGER,
}


def parse_phone(text: str) -> str:
    """Parse a Japanese phone number; returns **E.164** (e.g. ``+819012345678``).

    E.164 is the stored form: one canonical spelling per number whatever the
    user typed.  Use :func:`format_phone_display` to show it (090-1234-5678).
    Accepts full-width digits, hyphens of every width, spaces, parentheses,
    +81.  A 10-digit 090/080/070/060 number (a mobile missing a digit) is
    refused with a specific message; landlines 0X-XXXX-XXXX are fine.  The
    number must be valid for Japan per ``phonenumbers``; toll-free, premium
    and navigation-dial numbers (0120, 0800, 0570, 0990) are refused because
    they cannot reach the expert personally.
    """
    s = _PHONE_STRIP_RE.sub("", digits_and_hyphens(text))
    if not s:
        raise InvalidInput(f"電話番号を入力してください{_PHONE_EXAMPLE}")
    if not re.fullmatch(r"\+?[0-9]+", s):
        raise InvalidInput(f"電話番号は数字とハイフンで入力してください{_PHONE_EXAMPLE}")
    if s.startswith("+") and not s.startswith("+81"):
        raise InvalidInput(f"日本の電話番号を入力してください{_PHONE_EXAMPLE}")
    if s.startswith("+81"):
        # "+81 (0)3-1234-5678" is a common way to write it: drop the trunk 0.
        rest = s[3:]
        national = "0" + (rest[1:] if rest.startswith("0") else rest)
    else:
        national = s
    if len(national) > 15:
        raise InvalidInput(f"電話番号の桁数をご確認ください{_PHONE_EXAMPLE}")
    if national.startswith("00"):
        raise InvalidInput(f"日本の電話番号を市外局番から入力してください{_PHONE_EXAMPLE}")
    if national.startswith(_MOBILE_PREFIXES) and len(national) == 10:
        raise InvalidInput(
            f"携帯電話の番号は11桁です。数字が1つ足りないようです{_PHONE_EXAMPLE}"
        )
    if not national.startswith("0"):
        raise InvalidInput(
            f"電話番号は市外局番（0から始まる番号）から入力してください{_PHONE_EXAMPLE}"
        )
    try:
        num = phonenumbers.parse(national, "JP")
        valid = phonenumbers.is_valid_number(num)
        kind = phonenumbers.number_type(num)
    except Exception:  # NumberParseException, or anything unexpected
        valid = False
        kind = None
    if not valid:
        raise InvalidInput(
            f"電話番号として正しくないようです。桁数と市外局番をご確認ください{_PHONE_EXAMPLE}"
        )
    if kind not in _ACCEPTED_PHONE_TYPES:
        raise InvalidInput(
            "フリーダイヤルなどの番号はご登録いただけません。"
            f"ご本人に連絡がつく携帯電話か固定電話の番号を入力してください{_PHONE_EXAMPLE}"
        )
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def format_phone_display(e164: str) -> str:
    """Stored E.164 → Japanese national display form (090-1234-5678).

    Falls back to the input unchanged if it cannot be parsed (display code
    must never crash).
    """
    try:
        num = phonenumbers.parse(e164, "JP")
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    except Exception:
        return e164


# ---------------------------------------------------------------------------
# e-mail
# ---------------------------------------------------------------------------

_EMAIL_EXAMPLE = "（例：taro@example.com）"


def parse_email(text: str) -> str:
    """Check e-mail syntax (email-validator, no DNS) and return it normalised.

    Full-width input (ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ) is folded to ASCII
    first; the domain comes back lower-cased / IDNA-normalised by
    email-validator, the local part as typed.  No deliverability check: the
    bot must not depend on DNS, and a typo is caught by the confirmation step.
    """
    s = clean(text)
    if not s:
        raise InvalidInput(f"メールアドレスを入力してください{_EMAIL_EXAMPLE}")
    if " " in s:
        raise InvalidInput(f"メールアドレスにスペースは入りません{_EMAIL_EXAMPLE}")
    at = s.count("@")
    if at == 0:
        raise InvalidInput(f"メールアドレスに「@」がありません{_EMAIL_EXAMPLE}")
    if at > 1:
        raise InvalidInput(f"「@」は1つだけにしてください{_EMAIL_EXAMPLE}")
    local, _, domain = s.partition("@")
    if not local or not domain:
        raise InvalidInput(f"「@」の前と後ろの両方を入力してください{_EMAIL_EXAMPLE}")
    if ".." in local or local.startswith(".") or local.endswith("."):
        raise InvalidInput(
            "「@」の前でドット（.）が連続しているか、先頭・末尾にあるアドレスは"
            f"ご利用いただけません。別のメールアドレスを入力してください{_EMAIL_EXAMPLE}"
        )
    if "." not in domain:
        raise InvalidInput(f"「@」の後ろ（ドメイン）をご確認ください{_EMAIL_EXAMPLE}")
    try:
        result = validate_email(s, check_deliverability=False)
        return result.normalized
    except EmailNotValidError:
        pass
    except Exception:  # e.g. UnicodeError from IDNA on exotic input
        pass
    raise InvalidInput(f"メールアドレスの形式が正しくないようです。ご確認ください{_EMAIL_EXAMPLE}")


# ---------------------------------------------------------------------------
# postal code
# ---------------------------------------------------------------------------

_POSTAL_EXAMPLE = "（例：100-0001）"


def parse_postal_code(text: str) -> str:
    """郵便番号 → ``"123-4567"`` (stored and displayed form).

    Accepts 〒, hyphens of every width, full-width digits and spaces.
    """
    s = digits_and_hyphens(text)
    s = s.replace("〒", "").replace("郵便番号", "")
    s = re.sub(r"[\s\-:]", "", s)
    if not s:
        raise InvalidInput(f"郵便番号を7桁の数字で入力してください{_POSTAL_EXAMPLE}")
    if not re.fullmatch(r"[0-9]+", s):
        raise InvalidInput(f"郵便番号は数字で入力してください{_POSTAL_EXAMPLE}")
    if len(s) != 7:
        raise InvalidInput(
            f"郵便番号は7桁です（入力は{len(s)}桁でした）。ご確認ください{_POSTAL_EXAMPLE}"
        )
    return f"{s[:3]}-{s[3:]}"


# ---------------------------------------------------------------------------
# prefectures
# ---------------------------------------------------------------------------

REGIONS: dict[str, list[str]] = {
    "北海道": ["北海道"],
    "東北": ["青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県"],
    "関東": ["茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県"],
    "中部": [
        "新潟県", "富山県", "石川県", "福井県", "山梨県",
        "長野県", "岐阜県", "静岡県", "愛知県",
    ],
    "近畿": ["三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県"],
    "中国": ["鳥取県", "島根県", "岡山県", "広島県", "山口県"],
    "四国": ["徳島県", "香川県", "愛媛県", "高知県"],
    "九州・沖縄": [
        "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
    ],
}
"""Region → prefectures, in official (JIS X 0401) order; drives the region →
prefecture buttons (each region fits in one 13-item quick reply)."""

PREFECTURES: tuple[str, ...] = tuple(p for ps in REGIONS.values() for p in ps)
"""The 47 prefectures in official order (JIS X 0401 codes 01–47)."""

PREFECTURE_REGION: dict[str, str] = {p: r for r, ps in REGIONS.items() for p in ps}

_PREF_BY_KEY: dict[str, str] = {}
for _p in PREFECTURES:
    _PREF_BY_KEY[_p] = _p
    if _p != "北海道":
        _PREF_BY_KEY[_p[:-1]] = _p  # suffix 都/府/県 optional (not for 北海道)
# Typed region names expand to their prefectures (九州 alone excludes 沖縄).
_REGION_BY_KEY: dict[str, list[str]] = {
    "東北": REGIONS["東北"],
    "関東": REGIONS["関東"],
    "中部": REGIONS["中部"],
    "近畿": REGIONS["近畿"],
    "関西": REGIONS["近畿"],
    "中国": REGIONS["中国"],
    "四国": REGIONS["四国"],
    "九州": [p for p in REGIONS["九州・沖縄"] if p != "沖縄県"],
    "九州沖縄": REGIONS["九州・沖縄"],
    "全国": list(PREFECTURES),
}
_PREF_SPLIT_RE = re.compile(r"[\s、,，・/;；と]+")


def parse_prefecture(text: str) -> str | None:
    """One typed prefecture, 都/府/県 optional: 「東京」 → 東京都; anything else → None."""
    return _PREF_BY_KEY.get(clean(text))


def parse_prefectures(text: str) -> list[str]:
    """Parse typed prefectures (対応地域) into official names, official order.

    「東京都、神奈川」「東京 大阪府」「北海道・沖縄」: separators 、 , ，
    space ・ /; the suffix 都/府/県 is optional except for 北海道.  Region names
    (関東, 近畿/関西, 九州 …, 〜地方) and 全国 expand to their prefectures.
    Duplicates are dropped.  Unknown names are refused, naming them.
    """
    s = clean(text)
    tokens = [t for t in _PREF_SPLIT_RE.split(s) if t]
    if not tokens:
        raise InvalidInput("都道府県名を入力してください（例：東京都、神奈川県）")
    chosen: set[str] = set()
    unknown: list[str] = []
    for tok in tokens:
        key = tok
        if key in _PREF_BY_KEY:
            chosen.add(_PREF_BY_KEY[key])
            continue
        key = key[:-2] if key.endswith("地方") and len(key) > 2 else key
        if key in _REGION_BY_KEY:
            chosen.update(_REGION_BY_KEY[key])
        else:
            unknown.append(tok)
    if unknown:
        shown = "、".join(dict.fromkeys(unknown))
        if len(shown) > 60:
            shown = shown[:60] + "…"
        hint = "（北海道は「北海道」と入力してください）" if "北海" in unknown else ""
        raise InvalidInput(
            f"「{shown}」という都道府県が見つかりません{hint}。"
            "都道府県名を「、」で区切って入力してください（例：東京都、神奈川県）"
        )
    return [p for p in PREFECTURES if p in chosen]
