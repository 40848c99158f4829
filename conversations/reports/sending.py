"""The report's summary (確認) and its sending (送信): the last step of the writing flow.

The summary shows the dispatch, one row with 修正 per question (in the
order asked, from ``questions.ITEMS``) and the fee as ``domain.fees``
computes it. 送信 checks nothing required is missing and that the minutes
still fit the check-in/out, stores the fee and its month with the report's
move to 確認待ち (``domain.statuses.REPORT``), cancels the reminder and
sends the card to the institution's reviewers and the secretariat
(``review``). Kept apart from the questions so that each reads on its own.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import POSTBACK, TEXT, Finish, Invalid, Outcome, Step
from conversations.kit.steps import summary_answer
from conversations.reports.common import describe, elapsed_minutes, save, yen
from conversations.reports.drafts import session_report
from conversations.reports.fee import fee_line, month_label, withholding_text
from conversations.reports.questions import ITEMS
from conversations.reports.reminders import cancel_reminder
from conversations.reports.review import decision_buttons, report_card
from conversations.roles import reviewer_ids, secretariat_ids
from domain import clock, fees
from domain.status_machine import IllegalTransition
from domain.statuses import REPORT, REPORT_EDITABLE, REPORT_LABELS
from program import FeeBreakdown
from storage.models import Report, utcnow
from storage.sessions import Session


def summary_rows(ctx: Context, report: Report, fee: FeeBreakdown) -> list[flex.Row]:
    """The dispatch, one row with 修正 per item (in the order asked), then the fee."""
    draft = report.draft or {}
    rows: list[flex.Row] = [("派遣", describe(ctx, report.dispatch), None)]
    rows += [(item.summary_label or item.title, item.summary(ctx, draft), f"p=edit&s={item.name}")
             for item in ITEMS if item.on_summary]
    rows += [
        ("謝金", yen(fee.gross_yen) + ("（上限適用）" if fee.capped else ""), None),
        ("源泉徴収", withholding_text(ctx, fee.withholding_yen), None),
        ("交通費（実費）", yen(fee.travel_yen), None),
        ("支払額", f"{yen(fee.net_yen)}（{month_label(fees.fee_month(ctx.program, report))}）", None),
    ]
    return rows


def editable() -> list[str]:
    """The items with a row (and 修正) on the summary."""
    return [item.name for item in ITEMS if item.on_summary]


def label_to_step() -> dict[str, str]:
    """The words of a typed 「修正 …」: each row's label and the item's aliases."""
    return {label: item.name for item in ITEMS if item.name in editable()
            for label in (item.summary_label or item.title, *item.aliases)}


# What 修正 may jump to (``edit_<state>`` moves, see ``writing.FLOW``) and by which typed words.
EDITABLE = editable()
LABEL_TO_STEP = label_to_step()


def missing_items(report: Report) -> list[str]:
    """The required questions still unanswered, as 送信 names them (交通費 once for amount and route)."""
    draft = report.draft or {}
    labels = [item.missing_label or item.title for item in ITEMS
              if not item.optional and item.applies(draft) and not item.answered(draft)]
    return list(dict.fromkeys(labels))


_SEND_OR_FIX = "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 対面時間」と入力しても直せます）。"


class Confirm(Step):
    name = "confirm"
    title = "報告内容の確認"
    help = "内容と謝金を確認し、直す項目は「修正」、よろしければ「送信」を押してください。送信すると支援機関と事務局が確認します。"
    accepts, wrong_kind_text = frozenset({TEXT, POSTBACK}), _SEND_OR_FIX

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        report = session_report(s, ctx)
        if report is None:
            return [msg.text("報告書が見つかりませんでした。「報告書」と送ってください。")]
        if not (report.draft or {}).get("photos_done"):
            save(report, photos_done=True)  # 写真 was skipped (optional): it is answered
        fee = fees.compute_fee(ctx.program, report)
        intro: list[Message] = [] if again else [msg.text("入力ありがとうございました。内容と謝金をご確認ください。")]
        if report.status == "returned" and report.reason:
            intro.append(msg.text(f"差し戻しの理由：{report.reason}"))
        return intro + [
            flex.summary_bubble("支援実施報告書の確認", summary_rows(ctx, report, fee), ("送信", "p=submit")),
            msg.text(fee_line(ctx, fee, fees.fee_month(ctx.program, report))
                     + "\nよろしければ「送信」、直す場合は各項目の「修正」を押してください。", ["送信"]),
        ]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return summary_answer(s, inp, editable=EDITABLE, label_to_step=LABEL_TO_STEP,
                              on_submit=lambda: submit(s, ctx), submit_words=("送信", "提出")) \
            or Invalid(_SEND_OR_FIX)


def submit(s: Session, ctx: Context) -> Outcome:
    """送信: compute and store the fee, cancel the reminder, tell the institution and the secretariat."""
    report = session_report(s, ctx)
    if report is None:
        return Finish([msg.text("報告書が見つかりませんでした。")])
    if report.status not in REPORT_EDITABLE:
        return Finish([msg.text(f"この報告書はすでに送信されています（{REPORT_LABELS.get(report.status, report.status)}）。")])
    missing = missing_items(report)
    if missing:
        return Invalid("まだ入力されていない項目があります：" + "、".join(missing))
    d = report.dispatch
    elapsed = elapsed_minutes(d)
    draft = dict(report.draft or {})
    if elapsed is not None and draft["minutes"] > elapsed:  # the checks were corrected since
        return Invalid(f"対面時間がチェックインからチェックアウトまでの時間（{clock.duration(elapsed)}）を超えています。「修正 対面時間」で直してください。")
    fee = fees.compute_fee(ctx.program, report)
    month = fees.fee_month(ctx.program, report)
    before = report.status
    job_id = draft.pop("reminder_job_id", None)
    draft.pop("open", None)
    draft["elapsed_minutes"] = elapsed
    now = utcnow()
    try:
        REPORT.move(report, "submit", actor=ctx.user_id, event_id=ctx.event_id, changes={
            "draft": draft, "minutes": fee.minutes, "gross_yen": fee.gross_yen, "withholding_yen": fee.withholding_yen,
            "travel_yen": fee.travel_yen, "net_yen": fee.net_yen, "fee_month": month, "submitted_at": now,
            "updated_at": now})
    except IllegalTransition:  # sent meanwhile (the machine audited the refusal)
        return Finish([msg.text(f"この報告書はすでに送信されています（{REPORT_LABELS.get(report.status, report.status)}）。")])
    ctx.audit("report.submit", target=f"report:{report.id}", before=before, after="submitted",
              reason=f"gross={fee.gross_yen} net={fee.net_yen} month={month}")
    if job_id:
        cancel_reminder(ctx, job_id)
    resent = before == "returned"
    head = "差し戻した支援実施報告書が再提出されました。" if resent else "支援実施報告書が提出されました。"
    if resent and report.reason:
        head += f"\n（前回の差し戻し理由：{report.reason}）"
    card_actions = decision_buttons(report)
    why = ("報告書が再提出されました" if resent else "報告書が提出されました") + "：受理または差し戻しをお願いします"
    for to in reviewer_ids(d.institution_id) + secretariat_ids():  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        ctx.notify(to, [msg.text(head), report_card(ctx, report, card_actions, why=why)], "report_submitted")
    return Finish([msg.text(
        f"支援実施報告書を送信しました（報告書No.{report.id}）。\n{fee_line(ctx, fee, month)}\n"
        "支援機関・事務局の確認後、受理されると支払いの対象になります。結果はこのトークでお知らせします。")])
