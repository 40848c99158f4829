"""Which business a request is for: one the institution already has, or a new one.

The free-dispatch limit is per business, so the same business must not come
back as a new record because it was typed differently: it is recognised by
its number in the list, by its name however it is spaced or cased, or by
its 法人番号 (checked with 国税庁's check digit).
"""
from __future__ import annotations

import re
import unicodedata

from conversations.kit.context import Context
from storage.models import Business

MAX_CHOICES = 12  # quick reply: 13 items at most, one kept for a typed search hint
NAME_MIN, NAME_MAX = 2, 100


def corporate_number_ok(number: str) -> bool:
    """法人番号: 13 digits whose first digit checks the other 12 (国税庁's formula)."""
    if not re.fullmatch(r"\d{13}", number):
        return False
    base = number[1:]
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return int(number[0]) == 9 - total % 9


def corporate_number_problem(number: str) -> str | None:
    """What is wrong with a typed 法人番号 (already normalised), or ``None`` when it is valid.

    Thirteen digits that fail the check are most likely a mistyped digit, so the
    user is told the check digit is wrong rather than the format."""
    if re.fullmatch(r"\d{13}", number):
        if corporate_number_ok(number):
            return None
        return "法人番号のチェックデジット（先頭の1桁）が正しくありません。番号をお確かめください。ない場合は「なし」。"
    return "法人番号は13桁の数字です（先頭の検査用数字も含めて確認してください）。ない場合は「なし」。"


def name_problem(name: str) -> str | None:
    """What is wrong with a typed business name, or ``None``: it needs letters or digits
    (not only emoji or symbols) and fits the records' limit (the excess is said)."""
    if len(name) > NAME_MAX:
        return (f"事業者の名称は{NAME_MAX}文字以内で入力してください"
                f"（現在{len(name):,}文字、{len(name) - NAME_MAX:,}文字オーバー）。")
    if len(name) < NAME_MIN:
        return f"事業者の名称は{NAME_MIN}〜{NAME_MAX}文字で入力してください。"
    if not any(unicodedata.category(c)[0] in "LN" for c in name):
        return "事業者の名称を文字で入力してください（記号や絵文字だけの名称は登録できません）。"
    return None


def known_businesses(ctx: Context) -> list[Business]:
    """The institution's businesses offered as choices, by name."""
    return list(Business.select().where(Business.institution == ctx.user.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                .order_by(Business.name).limit(MAX_CHOICES))


def _name_key(name: str) -> str:
    """Spaces, full/half width and letter case do not make another business: 「株式会社 テスト」 = 「株式会社テスト」."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).casefold()


def business_named(ctx: Context, name: str) -> Business | None:
    """The institution's business of that name, if it has one (the free-dispatch limit is per business)."""
    key = _name_key(name)
    for business in Business.select().where(Business.institution == ctx.user.institution_id).order_by(Business.id):  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        if _name_key(business.name) == key:
            return business
    return None
