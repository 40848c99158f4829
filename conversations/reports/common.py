"""What every part of the 支援実施報告書 feature shares: statuses, wording and the draft.

How yen, durations and a dispatch's day are written, the check-in and
check-out behind the face-to-face minutes, the parsers for typed minutes
and amounts, and the one way an answer reaches ``Report.draft``
(:func:`save`). It sits below the writing flow, the review, the reminders
and the secretariat's commands so that each can use it without importing
the others.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from conversations.dispatch.attendance_rules import checks_of
from conversations.kit.context import Context
from domain import clock
from storage import repo
from storage.models import Attendance, Dispatch, Report, utcnow

# --- small helpers: time, money, minutes -------------------------------------------------------


def yen(amount: int | None) -> str:
    return "—" if amount is None else f"{amount:,}円"


def describe(ctx: Context, d: Dispatch) -> str:
    return f"派遣No.{d.id} {clock.day_text(ctx.program.timezone, d.scheduled_at)} {d.business.name}"




def checks(d: Dispatch) -> tuple[Attendance | None, Attendance | None]:
    """The dispatch's check-in and check-out (the first in, the last out)."""
    # Through the backref: a list already when a listing prefetched it (``with_checks``), else one query.
    rows = sorted(checks_of(d), key=lambda a: (a.line_timestamp, a.id))
    ins = [a for a in rows if a.kind == "in"]
    outs = [a for a in rows if a.kind == "out"]
    return (ins[0] if ins else None), (outs[-1] if outs else None)


def elapsed_minutes(d: Dispatch) -> int | None:
    """Check-out − check-in in whole minutes, from LINE's own event times."""
    check_in, check_out = checks(d)
    if check_in is None or check_out is None:
        return None
    return max(0, int((check_out.line_timestamp - check_in.line_timestamp).total_seconds() // 60))


def hours_minutes(minutes: int) -> str:
    """95 → 「1時間35分」, 120 → 「2時間」, 45 → 「45分」: short, for a line beside the times."""
    hours, rest = divmod(max(minutes, 0), 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分" if rest else f"{hours}時間"


def times_text(ctx: Context, d: Dispatch) -> str:
    """「予定 10:00〜 / 実績 10:05〜11:40（1時間35分）」: the scheduled start beside the actual
    check-in and check-out (LINE's event times, in the program's zone), on every report card."""
    tz = ctx.program.timezone
    check_in, check_out = checks(d)
    planned = f"予定 {clock.hhmm(tz, d.scheduled_at)}〜"
    if check_in is None:
        return f"{planned} / 実績 —"
    if check_out is None:
        return f"{planned} / 実績 {clock.hhmm(tz, check_in.line_timestamp)}〜（チェックアウト前）"
    minutes = int((check_out.line_timestamp - check_in.line_timestamp).total_seconds() // 60)
    return (f"{planned} / 実績 {clock.hhmm(tz, check_in.line_timestamp)}〜{clock.hhmm(tz, check_out.line_timestamp)}"
            f"（{hours_minutes(minutes)}）")


def parse_minutes(text: str) -> int | None:
    """「130」「130分」「2:10」「2時間10分」「2時間」「2時間10分（130分）」 → minutes (may be ≤ 0)."""
    t = "".join(unicodedata.normalize("NFKC", text).split()).replace("−", "-")
    if m := re.fullmatch(r".*\((\d+)分\)", t):
        return int(m.group(1))
    if m := re.fullmatch(r"(-?\d{1,5})分?", t):
        return int(m.group(1))
    if m := re.fullmatch(r"(\d{1,2}):(\d{2})", t):
        return int(m.group(1)) * 60 + int(m.group(2)) if int(m.group(2)) < 60 else None
    if m := re.fullmatch(r"(\d{1,2})時間(?:(\d{1,2})分)?", t):
        return int(m.group(1)) * 60 + int(m.group(2) or 0) if int(m.group(2) or 0) < 60 else None
    return None


def parse_yen(text: str) -> int | None:
    """「1,200円」「１２００」「¥1200」 → 1200; anything else → None."""
    t = "".join(unicodedata.normalize("NFKC", text).split())
    t = t.removeprefix("¥").removeprefix("\\").removesuffix("円").replace(",", "")
    return int(t) if re.fullmatch(r"\d{1,9}", t) else None


# --- the report in SQL -----------------------------------------------------------------------------


def find_report(raw: object) -> Report | None:
    try:
        return Report.get_or_none(Report.id == int(str(raw)))
    except (TypeError, ValueError):
        return None


def save(report: Report, **fields: Any) -> None:
    """Save answers to the draft at once (``None`` removes a key)."""
    report.draft = repo.merged(report.draft, fields)
    report.updated_at = utcnow()
    report.save(only=[Report.draft, Report.updated_at])
