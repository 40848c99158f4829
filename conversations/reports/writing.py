"""支援実施報告書, the expert's side: the flow of writing the report after a dispatch.

Reads top to bottom like the conversation: how a report is opened (after
check-out, or 「報告書」 at rest), which dispatch when several owe one, then
the questions (``questions``: 相談内容 → 支援内容 → 事業者の課題 → 今後の提案
→ 対面時間 → 交通費 → 経路 → 写真) and the summary with 送信 (``sending``),
all declared once in :data:`STEPS`; the flow's branches and machine follow.

Every answer is saved to ``Report.draft`` the moment it is given; the
session only remembers the position (and which report, ``drafts``).
Check-out (``conversations.dispatch.attendance``) hands over to this flow
(:func:`opening`); 「報告書」 at rest enters it too (:func:`begin`).

The face-to-face minutes default to check-out − check-in (the LINE
timestamps of the two ``Attendance`` rows) and may be lowered, never raised.
On 送信 the fee is computed by ``domain.fees`` (``Program.fee``) and stored
with the fee month; the reviewers then decide (``review``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linebot.v3.messaging import Message

from conversations.dispatch import attendance
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import TEXT, Advance, Finish, Flow, Handoff, Interrupt, Invalid, Outcome, Pause, Step
from conversations.kit.steps import choose
from conversations.reports.common import describe, save
from conversations.reports.drafts import current_report, ensure_report, own_expert, reportable
from conversations.reports.questions import ITEMS, Item, first_unanswered
from conversations.reports.reminders import schedule_first_reminder
from conversations.reports.sending import Confirm
from domain.statuses import REPORT_LABELS, REPORT_PAID
from storage.models import Dispatch, Report, utcnow
from storage.sessions import Session

START_WORDS = ("報告書", "報告", "支援実施報告書", "報告書作成", "報告書を書く")

# --- transitions ---------------------------------------------------------------------------------

# ``next`` moves to the next item (derived from the step order, listed in
# STEPS at the end). 「報告書」 with several reports to write starts at
# ``dispatch`` (which one?) and opens the chosen report at its first
# unanswered question (``open_<state>``, added with FLOW). A travel amount
# asks for the route (``route``); 「なし」 skips it. 修正 on the summary jumps
# to an item (``edit_<state>``, added with FLOW for each row) and its last
# question comes straight back (engine: EDIT_FLAG → ``review``).
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "route", "source": "travel", "dest": "travel_route"},
    {"trigger": "next", "source": "travel", "dest": "photos"},
]


# --- starting: after check-out, or 「報告書」 ---------------------------------------------------------


def answered_path(report: Report, state: str) -> list[str]:
    """The questions before ``state`` that apply to this report: where 戻る goes."""
    draft = report.draft or {}
    before = FLOW.order[: FLOW.order.index(state)]
    return [item.name for item in ITEMS if item.name in before and item.applies(draft)]


@attendance.on_check_out
def opening(ctx: Context, dispatch: Dispatch, before: Sequence[Message] = ()) -> Finish | Handoff:
    """Open the report of a checked-out dispatch at its first unanswered question.

    Returned by check-out right after the check is recorded (same
    transaction; ``before`` is what check-out says) and used by 「報告書」.
    Creates the draft report, schedules its reminder once, and hands the
    session over to this flow.
    """
    report = ensure_report(dispatch)
    if report.status in REPORT_PAID:
        return Finish([*before, msg.text(f"{describe(ctx, dispatch)} の報告書は提出済みです"
                                         f"（{REPORT_LABELS[report.status]}）。")])
    new = not (report.draft or {}).get("open") and report.status == "draft"
    save(report, open=True)
    if report.status == "draft":
        schedule_first_reminder(ctx, report, dispatch)
    if new:
        ctx.audit("report.open", target=f"report:{report.id}", after=f"dispatch:{dispatch.id}")
    state = first_unanswered(report)
    intro = ("差し戻された支援実施報告書を修正します。" if report.status == "returned"
             else "支援実施報告書の入力を始めます。" if new else "支援実施報告書の続きです。")
    lines = [intro, describe(ctx, dispatch)]
    if new:
        lines.append("入力した内容はその都度保存されます。途中でやめても「報告書」と送ると続きから再開できます。")
    return Handoff(FLOW, state, {"report_id": report.id}, messages=[*before, msg.text("\n".join(lines))],
                   back=answered_path(report, state))


def begin(s: Session, ctx: Context, dispatch: Dispatch) -> list[Message]:
    """「報告書」 for one dispatch: enter the flow at its report (or say it was sent)."""
    opened = opening(ctx, dispatch)
    return ENGINE.hand_over(s, ctx, opened) if isinstance(opened, Handoff) else opened.messages


def start(s: Session, ctx: Context) -> list[Message] | None:
    """An expert's 「報告書」 at rest: open the one report to write, or ask which (None: not an expert)."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    options = reportable(expert)
    if not options:
        return [msg.text("作成できる報告書はありません。報告書は派遣先でチェックアウトしたあとに作成できます。")]
    if len(options) == 1:
        return begin(s, ctx, options[0])
    return ENGINE.enter(FLOW, s, ctx, state="dispatch")


def to_attendance(kind: str) -> Interrupt:
    """チェックイン/チェックアウト tapped in the middle of a report: set the report aside and go there.

    The rich menu is always there, and a second dispatch on the same day is
    normal; the answers so far are in SQL, so 「報告書」 resumes later.
    (「報告書」 itself is the engine's: any flow's own name asks the current question again.)
    """

    def interrupt(s: Session, inp: Input, ctx: Context) -> Outcome:
        note = msg.text("報告書の入力を一時停止しました（入力内容は保存されています）。「報告書」と送ると続きから再開できます。")
        opened = attendance.opening(ctx, kind)
        if isinstance(opened, Handoff):
            opened.messages = [note, *opened.messages]
            return opened
        return Pause([note, *opened])

    return interrupt


# --- 0. which dispatch (several reports to write) ----------------------------------------------------

_BY_NUMBER = "一覧の番号（1、2…）で選んでください。"

class PickDispatch(Step):
    name = "dispatch"
    title = "報告する派遣の選択"
    leads_to_next = False  # opens the chosen report at its first unanswered question (``open_<state>``)
    help = "報告書を作成する派遣を、番号（1、2…）で選んでください。チェックアウトした派遣が表示されます。"
    accepts, wrong_kind_text = frozenset({TEXT}), _BY_NUMBER

    def _options(self, ctx: Context) -> list[Dispatch]:
        expert = own_expert(ctx)
        return reportable(expert)[:12] if expert else []

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        options = self._options(ctx)
        if not options:
            return [msg.text("報告書を作成できる派遣はありません。「キャンセル」と送ってください。", ["キャンセル"])]
        lines = "\n".join(f"{n}. {describe(ctx, d)}" for n, d in enumerate(options, start=1))
        choices = [(f"{n}. {d.business.name}", str(n)) for n, d in enumerate(options, start=1)]
        return [msg.text(f"報告書を作成する派遣を選んでください（番号で選べます）。\n{lines}", choices)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        options = self._options(ctx)
        picked = choose(inp, [str(n) for n in range(1, len(options) + 1)])
        if picked is None:
            return Invalid(_BY_NUMBER)
        d = options[int(picked) - 1]
        report = ensure_report(d)
        save(report, open=True)
        if report.status == "draft":
            schedule_first_reminder(ctx, report, d)
        s.data["report_id"] = report.id
        return Advance([msg.text(f"{describe(ctx, d)} の報告書です。")], trigger=f"open_{first_unanswered(report)}")


# --- the flow -------------------------------------------------------------------------------------------


class ReportFlow(Flow):
    def resume_state(self, ctx: Context) -> str | None:
        """The report being written (opened, not sent) at its first unanswered question."""
        report = current_report(ctx)
        return first_unanswered(report) if report is not None else None

    def on_restart(self, ctx: Context) -> None:
        """最初から: forget this report's answers (the reminder and the record stay)."""
        report = current_report(ctx)
        if report is not None:
            keep = {k: v for k, v in (report.draft or {}).items() if k in ("open", "reminder_job_id", "reminders_sent")}
            report.draft = keep
            report.updated_at = utcnow()
            report.save(only=[Report.draft, Report.updated_at])


# The one declaration of the order (the questions in theirs, ``questions.ITEMS``): everything
# else (next, open_*, edit_*, where a report reopens, where 戻る goes, what is missing, the
# summary's rows) follows from it.
STEPS: list[Step] = [PickDispatch(), *ITEMS, Confirm()]
FLOW = ReportFlow(
    "report",
    "支援実施報告書",
    STEPS,
    [
        *({"trigger": f"open_{step.name}", "source": "dispatch", "dest": step.name} for step in STEPS[1:]),
        *TRANSITIONS,
        *({"trigger": f"edit_{step.name}", "source": "confirm", "dest": step.name}
          for step in STEPS if isinstance(step, Item) and step.on_summary),
    ],
    start_words=START_WORDS,
    interrupts={word: to_attendance(kind) for kind, words in attendance.START_WORDS.items() for word in words},
)
STATES = FLOW.order
