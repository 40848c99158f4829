"""Which dispatch a check-in / check-out may be recorded on, and when: the time side of attendance.

Only the expert's own dispatches; check-in only for an accepted dispatch
scheduled today (the program's time zone, ± ``checkin_tolerance_days``),
check-out only after check-in, one of each per dispatch. :func:`usable`
asks it all again at the last moment, because a dispatch can be cancelled
or moved while the expert is sending the location.

A check-in far from the scheduled start is allowed but told and shown as
要確認 (:func:`off_schedule`), judged when shown rather than stored.

Check times are stored as naive UTC and shown in the program's time zone
(:func:`local`, :func:`hhmm`, :func:`day_text`).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from conversations.kit.context import Context
from domain import clock
from storage import repo
from storage.models import Attendance, Business, Dispatch, ExceptionReport

MAX_OPTIONS = 12  # quick reply: 13 items at most, one kept for キャンセル

IN, OUT = "in", "out"
VERB = {IN: "チェックイン", OUT: "チェックアウト"}
STATUS_BEFORE = {IN: "accepted", OUT: "checked_in"}


def tolerance_days(ctx: Context) -> int:
    """Days either side of the scheduled (Tokyo) date on which check-in is allowed (program.toml)."""
    return ctx.program.checkin_tolerance_days


def label(d: Dispatch, ctx: Context) -> str:
    return f"派遣No.{d.id} {d.business.name}（{clock.when_text(ctx.program.timezone, d.scheduled_at)}〜）"


def expert_dispatches(ctx: Context) -> Any:
    """The expert's dispatches with their businesses, as a query to narrow."""
    expert = repo.expert_of(ctx.user)
    return Dispatch.select(Dispatch, Business).join(Business).where(Dispatch.expert == expert)


def day_bounds(ctx: Context, day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the Tokyo days within the tolerance around ``day``."""
    tol = tolerance_days(ctx)
    tz = ctx.program.timezone
    start = datetime.combine(day - timedelta(days=tol), time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=tol + 1), time(0), tzinfo=tz)
    return clock.to_utc(start), clock.to_utc(end)


def on_schedule(ctx: Context, d: Dispatch, day: date) -> bool:
    start, end = day_bounds(ctx, day)
    return start <= d.scheduled_at < end


def candidates(ctx: Context, kind: str) -> list[Dispatch]:
    """The expert's dispatches this check applies to now, earliest first."""
    query = expert_dispatches(ctx).where(Dispatch.status == STATUS_BEFORE[kind])
    if kind == IN:
        start, end = day_bounds(ctx, ctx.sent_day)
        query = query.where((Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end))
    return list(query.order_by(Dispatch.scheduled_at, Dispatch.id).limit(MAX_OPTIONS))


def with_checks(dispatches: Iterable[Dispatch]) -> None:
    """Load the check-ins/outs and exception reports of a page of dispatches in two queries, onto
    each dispatch's ``attendances`` / ``exceptions`` (what the report cards and 要確認 read):
    a listing costs the same whether the program has ten dispatches or fifty thousand."""
    ds = list(dispatches)
    ids = [d.id for d in ds]
    checks: dict[int, list[Attendance]] = {i: [] for i in ids}
    exceptions: dict[int, list[ExceptionReport]] = {i: [] for i in ids}
    for a in Attendance.select().where(Attendance.dispatch.in_(ids)):
        checks[a.dispatch_id].append(a)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    for e in ExceptionReport.select().where(ExceptionReport.dispatch.in_(ids)):
        exceptions[e.dispatch_id].append(e)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    for d in ds:  # the backrefs are plain descriptors: the instance's own lists win
        d.__dict__["attendances"], d.__dict__["exceptions"] = checks[d.id], exceptions[d.id]


def checks_of(d: Dispatch) -> list[Attendance]:
    """The dispatch's check-ins and check-outs: prefetched by :func:`with_checks`, else one query."""
    return list(d.attendances)  # type: ignore[attr-defined]  # peewee's backref


def exceptions_of(d: Dispatch) -> list[ExceptionReport]:
    """The dispatch's exception reports: prefetched by :func:`with_checks`, else one query."""
    return list(d.exceptions)  # type: ignore[attr-defined]  # peewee's backref


def check_of(d: Dispatch, kind: str) -> Attendance | None:
    return Attendance.get_or_none((Attendance.dispatch == d) & (Attendance.kind == kind))


def usable(ctx: Context, dispatch_id: object, kind: str, day: date) -> Dispatch | str:
    """The dispatch to record on, or why it can no longer be used (checked again at the last moment)."""
    d = Dispatch.get_or_none(Dispatch.id == dispatch_id)
    expert = repo.expert_of(ctx.user)
    if d is None or expert is None or d.expert_id != expert.id:  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        return "この派遣は見つかりませんでした。"
    if kind == IN and d.status != STATUS_BEFORE[IN]:
        if d.status in ("checked_in", "completed"):
            return f"派遣No.{d.id} はすでにチェックイン済みです。"
        return f"派遣No.{d.id} は現在チェックインできません（取消・変更された可能性があります）。"
    if kind == OUT and d.status != STATUS_BEFORE[OUT]:
        if d.status == "completed":
            return f"派遣No.{d.id} はすでにチェックアウト済みです。"
        return f"派遣No.{d.id} はチェックインされていないため、チェックアウトできません。"
    if kind == IN and not on_schedule(ctx, d, day):
        return f"派遣No.{d.id} の予定日（{clock.when_text(ctx.program.timezone, d.scheduled_at)}）ではないため、チェックインできません。"
    if check_of(d, kind) is not None:
        return f"派遣No.{d.id} はすでに{VERB[kind]}済みです。"
    return d


def off_schedule(ctx: Context, d: Dispatch, at: datetime) -> int | None:
    """Minutes a check-in at ``at`` is away from the scheduled start when more than
    ``[attendance] early_late_minutes`` (negative: early), else ``None``.

    Computed whenever it is shown, from the dispatch's time and the check-in's, so a
    日時変更 made before check-in is judged against the new time and nothing is stored."""
    seconds = (at - d.scheduled_at).total_seconds()
    minutes = int(seconds // 60) if seconds >= 0 else -int(-seconds // 60)
    return minutes if abs(minutes) > ctx.program.checkin_early_late_minutes else None


def off_schedule_text(ctx: Context, d: Dispatch, at: datetime) -> str | None:
    """「予定時刻（10:00）より75分早いチェックイン」, or ``None`` when on time."""
    minutes = off_schedule(ctx, d, at)
    if minutes is None:
        return None
    gap = abs(minutes)
    hours, rest = divmod(gap, 60)
    amount = f"{gap}分" if gap < 120 else f"{hours}時間" + (f"{rest}分" if rest else "")
    return (f"予定時刻（{clock.hhmm(ctx.program.timezone, d.scheduled_at)}）より{amount}"
            f"{'早い' if minutes < 0 else '遅い'}チェックイン")
