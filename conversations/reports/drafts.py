"""The expert's reports in SQL: which dispatches still owe one, and which one is being written.

Every answer of the writing flow goes straight to ``Report.draft``; the
session only remembers which report (``report_id``). These lookups find that
report again — checked to be this expert's, recomputed from SQL when the
session lost it — so the questions, the summary and the flow's entry points
all agree on it without importing one another.
"""
from __future__ import annotations

from conversations.kit.context import Context
from domain.statuses import REPORT, REPORT_EDITABLE, REPORT_PAID
from storage import repo
from storage.models import Dispatch, Expert, Report
from storage.sessions import Session


def own_expert(ctx: Context) -> Expert | None:
    """The expert behind this LINE user (None for staff and strangers)."""
    return repo.expert_of(ctx.user)


def current_report(ctx: Context) -> Report | None:
    """The report the expert is writing: the last one opened and not yet sent."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    rows = (Report.select().join(Dispatch)
            .where((Dispatch.expert == expert.id) & Report.status.in_(REPORT_EDITABLE))
            .order_by(Report.updated_at.desc(), Report.id.desc()))
    return next((r for r in rows if (r.draft or {}).get("open")), None)


def session_report(s: Session, ctx: Context) -> Report | None:
    """The session's report, checked to be this expert's; recomputed from SQL if the session lost it."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    report_id = s.data.get("report_id")
    if report_id is not None:
        report: Report | None = (Report.select().join(Dispatch)
                  .where((Report.id == report_id) & (Dispatch.expert == expert.id)).first())
        if report is not None:
            return report
    report = current_report(ctx)
    if report is not None:
        s.data["report_id"] = report.id
    return report


def reportable(expert: Expert) -> list[Dispatch]:
    """Checked-out dispatches whose report is not yet sent (or came back)."""
    done = list(Dispatch.select().where((Dispatch.expert == expert.id) & (Dispatch.status == "completed"))
                .order_by(Dispatch.scheduled_at, Dispatch.id))
    sent = {r.dispatch_id for r in Report.select(Report.dispatch).where(  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        Report.dispatch.in_([d.id for d in done]) & Report.status.in_(REPORT_PAID))} if done else set()
    return [d for d in done if d.id not in sent]


def ensure_report(d: Dispatch) -> Report:
    """The dispatch's report, created as an empty draft the first time it is opened."""
    report = Report.get_or_none(Report.dispatch == d.id)
    if report is None:
        report = Report.create(dispatch=d, status=REPORT.initial, draft={})
    return report
