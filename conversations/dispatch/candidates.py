"""Which experts a request may go to: commissioned, covering the theme and the business's prefecture.

The reviewer narrows a long list by part of a name (kanji or kana) or by
the expert's number; the request form asks for a prefecture only when the
business's address names none, because the area match needs one.
"""
from __future__ import annotations

from peewee import fn

from conversations.kit.context import Context
from domain.names import expert_name
from domain.validators import PREFECTURES
from storage.models import Expert, ExpertArea, ExpertField


def prefecture_in(address: str) -> str | None:
    """The prefecture an address names, if any."""
    return next((p for p in PREFECTURES if p in address), None)


def candidates(ctx: Context, theme: str, address: str, search: str | None = None) -> list[Expert]:
    """Commissioned experts for this theme and the business's prefecture (by name or number)."""
    pref = prefecture_in(address)
    # Matched in SQL on the plain rows of what each expert covers (profiles are sealed).
    query = Expert.select().where((Expert.status == "commissioned") & fn.EXISTS(
        ExpertField.select(ExpertField.id).where((ExpertField.expert == Expert.id) & (ExpertField.field == theme))))
    if pref:
        query = query.where(fn.EXISTS(ExpertArea.select(ExpertArea.id).where(
            (ExpertArea.expert == Expert.id) & (ExpertArea.prefecture == pref))))
    found = []
    for e in query.order_by(Expert.id):
        if search and not (search == str(e.id) or search in expert_name(e).replace("　", "")
                           or search in (e.kana or "").replace("　", "")):
            continue
        found.append(e)
    # In フリガナ order: names are sealed at rest, so SQL cannot sort them.
    return sorted(found, key=lambda e: (e.kana or "", e.id))
