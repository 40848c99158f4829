"""Versions of the texts people agree to, named the way people read them: 「第2版（2026年4月）」.

program.toml stores a version as a short key (``2026-04``) — right for the
records (consents, audits compare it verbatim), unreadable in a chat. The
ordinal comes from the history the database already holds: every version an
expert was ever shown or agreed to (``ConditionsConsent``, the version in
force on each ``Expert``, the audited announcements and answers, which keep
the version replaced), plus the one in force now. Keys sort in time order (``YYYY-MM``), so the n-th key is the
n-th edition.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from storage.models import AuditLog, ConditionsConsent, Expert

# Audit rows whose before/after hold a conditions version (a revision announced, a consent given or refused).
_VERSION_AUDITS = ("conditions.announced", "conditions.agreed", "conditions.declined")
_YEAR_MONTH = re.compile(r"^(\d{4})-(\d{1,2})(?:-(\d{1,2}))?$")


def conditions_history(current: str) -> list[str]:
    """Every conditions version known, oldest first (``current`` always included)."""
    # DISTINCT in SQL: a handful of versions out of tens of thousands of rows at national scale
    # (reading every audited consent into Python took 60 ms a call, once per announce batch).
    known = {current}
    for query in (ConditionsConsent.select(ConditionsConsent.version).distinct(),
                  Expert.select(Expert.conditions_version).distinct(),
                  AuditLog.select(AuditLog.before).distinct().where(AuditLog.action.in_(_VERSION_AUDITS)),
                  AuditLog.select(AuditLog.after).distinct().where(AuditLog.action.in_(_VERSION_AUDITS))):
        known.update(str(row[0]) for row in cast(Iterable[tuple[Any]], query.tuples()) if row[0])
    return sorted(known)


def edition_name(version: str, history: list[str], inside_brackets: bool = False) -> str:
    """「第2版（2026年4月）」: the edition's ordinal in ``history`` and when it dates from.

    ``inside_brackets`` gives 「第2版・2026年4月」 for a text that already puts the
    version in brackets (the 就任承諾書's 「委嘱条件（{version}）」). A key that is
    not a year-month keeps its own words; one missing from the history (never
    seen by anyone) is named by its date only.
    """
    match = _YEAR_MONTH.match(version.strip())
    when = f"{match.group(1)}年{int(match.group(2))}月" if match else version
    if version not in history:
        return when if match else f"「{version}」版"
    ordinal = f"第{history.index(version) + 1}版"
    return f"{ordinal}・{when}" if inside_brackets else f"{ordinal}（{when}）"


def conditions_name(version: str, current: str, inside_brackets: bool = False) -> str:
    """The name of one conditions version, its ordinal read from the history."""
    return edition_name(version, conditions_history(current), inside_brackets)
