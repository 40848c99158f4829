"""支援実施報告書: the feature as the router sees it (flows, buttons, 「報告書」 at rest).

The expert's report after a dispatch, its fee, and its review, in parts
that each do one thing:

- ``writing``: the expert's flow, from opening a report to its last step;
- ``questions``: the report's questions (1–8), each knowing its answer in the draft;
- ``sending``: the summary (確認) and 送信;
- ``drafts``: which report the expert is writing, and which dispatches still owe one;
- ``fee``: how a fee is worded (the amounts and the month are ``domain.fees``);
- ``review``: the reviewers' card, 詳細, and their decision (受理 / 差し戻し);
- ``reminders``: the RQ job that reminds the expert of an unsent report;
- ``admin``: the secretariat's /reports and /fees;
- ``common``: wording, parsers and the draft, shared by all of them.

This module is the feature's entry point: ``handlers.router`` registers
``FLOWS``, ``ACTIONS`` and :func:`at_rest`, and the names other modules
and tests use are re-exported here.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.reports.admin import FEES_USAGE, REPORTS_USAGE, fees_command, reports_command
from conversations.reports.reminders import REMIND_JOB, remind, reminder_job_id
from conversations.reports.review import ACTIONS, DECISION, review_queue
from conversations.reports.writing import FLOW, START_WORDS, begin, start
from storage.sessions import Session

__all__ = [
    "ACTIONS", "DECISION", "FEES_USAGE", "FLOW", "FLOWS", "REMIND_JOB", "REPORTS_USAGE", "START_WORDS",
    "at_rest", "begin", "fees_command", "remind", "reminder_job_id", "reports_command",
]

FLOWS = [FLOW, DECISION]


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    """「報告書」 with no flow active: what it means depends on who sends it."""
    if inp.kind != "text" or inp.text not in START_WORDS + ("報告書一覧",):
        return None
    if ctx.user.role == "reviewer":
        return review_queue(ctx)
    if ctx.user.role == "secretariat":
        return [msg.text("報告書の一覧は「/reports」（確認待ち）、謝金の集計は「/fees YYYY-MM」で確認できます。",
                         ["/reports"])]
    return start(s, ctx)
