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


def corporate_number_ok(number: str) -> bool:
    """法人番号: 13 digits whose first digit checks the other 12 (国税庁's formula)."""
    if not re.fullmatch(r"\d{13}", number):
        return False
    base = number[1:]
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return int(number[0]) == 9 - total % 9


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
