"""Time, one way for the whole bot: stored as naive UTC, shown in the program's time zone.

Every timestamp in SQL is naive UTC (``utcnow``); people see the program's
zone (Asia/Tokyo), written the Japanese way. The conversions and formats
live here once, so a dispatch's time reads the same on the request card,
the check-in reply, the report and the secretariat's lists.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Literal

from domain.validators import to_wareki

WEEKDAYS = "月火水木金土日"

DateStyle = Literal["seireki", "wareki"]


def to_local(tz: tzinfo, utc_naive: datetime) -> datetime:
    """A stored (naive UTC) time in the zone ``tz``."""
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(tz)


def to_utc(moment: datetime) -> datetime:
    """An aware time as it is stored: naive UTC."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def from_local(tz: tzinfo, day: date, at: time = time.min) -> datetime:
    """``at`` o'clock on ``day`` in the zone ``tz`` (midnight by default), as stored: naive UTC."""
    return to_utc(datetime.combine(day, at, tzinfo=tz))


def local_day_bounds(tz: tzinfo, day: date) -> tuple[datetime, datetime]:
    """The stored (naive UTC) start and end of a local day: ``start <= t < end``."""
    return from_local(tz, day), from_local(tz, day + timedelta(days=1))


def local_date(tz: tzinfo, utc_naive: datetime) -> date:
    return to_local(tz, utc_naive).date()


def format_date(d: date, style: DateStyle = "seireki") -> str:
    """「2026年4月1日」 or 「令和8年4月1日」: a plain date (a letter's, a term's, a record's day)."""
    if style == "wareki":
        return to_wareki(d)
    return f"{d.year}年{d.month}月{d.day}日"


def hhmm(tz: tzinfo, utc_naive: datetime) -> str:
    """「10:05」."""
    return f"{to_local(tz, utc_naive):%H:%M}"


def day_text(tz: tzinfo, utc_naive: datetime) -> str:
    """「11月30日（月）」."""
    t = to_local(tz, utc_naive)
    return f"{t.month}月{t.day}日（{WEEKDAYS[t.weekday()]}）"


def when_text(tz: tzinfo, utc_naive: datetime) -> str:
    """「11月30日（月）10:05」."""
    return f"{day_text(tz, utc_naive)}{hhmm(tz, utc_naive)}"


def duration(minutes: int) -> str:
    """130 → 「2時間10分（130分）」, 120 → 「2時間（120分）」, 45 → 「45分」."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分（{minutes}分）" if rest else f"{hours}時間（{minutes}分）"


def stamp(tz: tzinfo, utc_naive: datetime) -> str:
    """「2026年4月1日 10:05」: a moment on a record (a status change, a consent)."""
    t = to_local(tz, utc_naive)
    return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}"
