"""How an expert's name is written: one formatter for every card, list, letter and export.

The name in force is in the columns (set when the application is sent and
when a change is approved); before that, the draft's answers are all there
is. Family and given name are joined by one U+3000 (``format_name``), the
form Japanese documents use and the 就任承諾 signature is compared with.
"""
from __future__ import annotations

from domain.normalize import format_name
from storage.models import Expert

MISSING = "（氏名未入力）"

# What a list needs to name an expert (with ``expert_name``): selecting only these skips reading
# and decrypting the sealed draft and profile of every row — at national scale, most of a list's cost.
NAME_COLUMNS = (Expert.id, Expert.family_name, Expert.given_name)


def expert_name(expert: Expert) -> str:
    """「山田　太郎」, or 「（氏名未入力）」 for an application that has no name yet."""
    family, given = expert.family_name or "", expert.given_name or ""
    if not (family and given):  # not sent yet: the draft's answers (read only then)
        draft = expert.draft or {}
        family = family or draft.get("family_name") or ""
        given = given or draft.get("given_name") or ""
    return format_name(family, given).strip() or MISSING
