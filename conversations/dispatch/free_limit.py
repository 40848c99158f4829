"""The free-dispatch limit: how many of a business's dispatches count against it.

A business gets at most ``free_dispatches_per_business`` free dispatches in
the program period. Accepted, checked-in and completed dispatches count;
declined and cancelled ones do not. A request still waiting for the
expert's answer is counted too when a new request is made, so two requests
cannot both slip under the limit; it is checked again on 受諾. The request
form, the expert's answer and the demo seed all count with
:func:`counted_dispatches`, so they cannot disagree.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from conversations.kit.context import Context
from domain import clock
from storage.models import Dispatch


def period_bounds(ctx: Context) -> tuple[datetime, datetime]:
    tz = ctx.program.timezone
    start = datetime.combine(ctx.program.period_start, time.min, tz)
    end = datetime.combine(ctx.program.period_end + timedelta(days=1), time.min, tz)
    return clock.to_utc(start), clock.to_utc(end)


def counted_dispatches(ctx: Context, business_id: int, statuses: tuple[str, ...], exclude: int | None = None) -> int:
    start, end = period_bounds(ctx)
    query = Dispatch.select().where((Dispatch.business == business_id) & Dispatch.status.in_(statuses)
                                    & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end))
    if exclude is not None:
        query = query.where(Dispatch.id != exclude)
    return query.count()
