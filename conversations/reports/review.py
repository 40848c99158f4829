"""支援実施報告書, the reviewers' side: the report card, 詳細, and the decision (受理 / 差し戻し).

A sent report reaches the institution's reviewers and the secretariat as a
card (:func:`report_card`); its buttons are postback actions (``ACTIONS``)
that may be tapped long after the card came, so every handler checks the
scope again. 差し戻し asks a reason, both ask for confirmation, and
:func:`apply` moves the report through its status machine
(``domain.statuses``), which writes in one conditional statement so
two people deciding at once cannot both win. Only accepted reports are payable.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from linebot.v3.messaging import FlexBox, FlexBubble, FlexButton, FlexComponent, FlexSeparator, FlexText, Message

from conversations.dispatch import attendance
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Finish, Flow, Outcome
from conversations.kit.steps import ConfirmStep, ReasonStep
from conversations.registration.review import action_data
from conversations.reports.common import describe, find_report, times_text, yen
from conversations.reports.fee import month_label, withholding_text
from conversations.reports.reminders import schedule_after_return
from conversations.roles import reviewer_ids, secretariat_ids
from domain import clock, fees
from domain.names import expert_name
from domain.status_machine import IllegalTransition
from domain.statuses import REPORT, REPORT_LABELS
from storage.models import Dispatch, LineUser, Report, utcnow
from storage.sessions import Session

# --- what reviewers and the secretariat see ----------------------------------------------------------------


def may_review(ctx: Context, report: Report) -> bool:
    """Reviewers of the dispatch's institution, and the secretariat."""
    user = ctx.user
    if user.role == "secretariat":
        return True
    return (user.role == "reviewer" and user.institution_id is not None  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
            and user.institution_id == report.dispatch.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def refuse(ctx: Context, what: str, report_id: object) -> list[Message]:
    ctx.audit("auth.refused", target=f"report:{report_id}", reason=what)
    return [msg.text("この報告書を操作する権限がありません。")]


def decision_buttons(report: Report) -> list[flex.Button]:
    buttons = [("詳細", action_data("rep_detail", id=report.id))]
    if report.status == "submitted":
        buttons += [("受理", action_data("rep_accept", id=report.id)), ("差し戻し", action_data("rep_return", id=report.id))]
    return buttons


def _stored_fee_rows(ctx: Context, report: Report) -> list[tuple[str, str]]:
    draft = report.draft or {}
    withholding: int | None
    travel: int | None
    net: int | None
    if report.gross_yen is None:  # not sent yet: what it would be
        fee = fees.compute_fee(ctx.program, report)
        gross, withholding, travel, net = fee.gross_yen, fee.withholding_yen, fee.travel_yen, fee.net_yen
        month = fees.fee_month(ctx.program, report)
    else:
        gross, withholding, travel, net = report.gross_yen, report.withholding_yen, report.travel_yen, report.net_yen
        month = report.fee_month or fees.fee_month(ctx.program, report)
    route = f"（{draft['travel_route']}）" if travel and draft.get("travel_route") else ""
    minutes = report.minutes if report.minutes is not None else draft.get("minutes")
    return [
        ("対面時間", clock.duration(minutes) if minutes is not None else "—"),
        ("謝金", yen(gross)),
        ("源泉徴収", withholding_text(ctx, withholding)),
        ("交通費", yen(travel) + route),
        ("支払額", f"{yen(net)}（{month_label(month)}）"),
    ]


def _kv(label: str, value: str) -> FlexBox:
    return FlexBox(layout="baseline", spacing="sm", contents=[
        FlexText(text=flex.shown(label, 40), size="xs", color=flex.LABEL_GREY, flex=2, wrap=True),
        FlexText(text=flex.shown(value), size="sm", flex=5, wrap=True),
    ])


def _button(label: str, data: str) -> FlexButton:
    tone = flex.button_tone(label)
    if tone == "forward":
        return FlexButton(action=flex.postback(label, data), style="primary", color=flex.GREEN, height="sm")
    return FlexButton(action=flex.postback(label, data), style="secondary", height="sm")


def report_card(ctx: Context, report: Report, actions: Sequence[flex.Button],
                photo_links: Sequence[tuple[str, str]] = (), why: str | None = None) -> Message:
    """One report as a reviewer sees it: why it arrived (``why``, for a push), who, where,
    the scheduled and actual times, the fee, the key answers, what to check and the decisions."""
    d = report.dispatch
    expert = d.expert
    draft = report.draft or {}
    status = REPORT_LABELS.get(report.status, report.status)
    header = FlexBox(layout="vertical", spacing="xs", paddingAll="16px", backgroundColor=flex.HEADER_BG, contents=[
        *([flex.why_line(why)] if why else []),
        FlexBox(layout="horizontal", contents=[
            FlexText(text=f"報告書No.{report.id}", size="xs", color=flex.SUB_GREY, flex=1),
            FlexText(text=status, size="xs", color=flex.GREEN, weight="bold", align="end", flex=1),
        ]),
        FlexText(text=flex.shown(f"{expert_name(expert)}（申請No.{expert.id}）", 60), size="md", weight="bold", wrap=True),
        FlexText(text=flex.shown(describe(ctx, d), 100), size="xs", color=flex.SUB_GREY, wrap=True),
        FlexText(text=flex.shown(d.institution.name, 100), size="xs", color=flex.SUB_GREY, wrap=True),
    ])
    body: list[FlexComponent] = [_kv("時刻", times_text(ctx, d))]
    body += [_kv(label, value) for label, value in _stored_fee_rows(ctx, report)]
    body.append(FlexSeparator(margin="md"))
    body += [_kv(label, msg.clip(str(draft.get(key) or "—"), 100))
             for label, key in (("相談内容", "consultation"), ("支援内容", "support"))]
    photos = draft.get("photos") or []
    body.append(_kv("写真", f"{len(photos)}枚" if photos else "なし"))
    points = attendance.points_to_check(ctx, d)
    if points:
        body.append(FlexText(text="【要確認】チェックイン・アウト", size="xs", color=flex.RED, weight="bold", margin="md"))
        body += [FlexText(text=flex.shown("・" + p, 120), size="xs", color=flex.RED, wrap=True) for p in points[:5]]
    if photo_links:
        body.append(FlexText(text="写真（表示の有効期限は短時間です）", size="xs", color=flex.LABEL_GREY, margin="md"))
        body += flex.photo_images(photo_links)
    footer = FlexBox(layout="vertical", spacing="sm", paddingAll="12px",
                     contents=[_button(label, data) for label, data in actions]) if actions else None
    bubble = FlexBubble(header=header, body=FlexBox(layout="vertical", spacing="sm", paddingAll="16px", contents=body),
                        footer=footer)
    alt = f"報告書No.{report.id} {expert_name(expert)}さん {d.business.name}（{status}）{times_text(ctx, d)}"
    if points:
        alt += "【要確認】" + "／".join(points[:3])
    return flex.flex_message(f"{why}｜{alt}" if why else alt, bubble)


def full_text(ctx: Context, report: Report) -> str:
    draft = report.draft or {}
    parts = [f"報告書No.{report.id}（{REPORT_LABELS.get(report.status, report.status)}）",
             f"{describe(ctx, report.dispatch)}", f"専門家：{expert_name(report.dispatch.expert)}",
             f"時刻：{times_text(ctx, report.dispatch)}"]
    for label, key in (("相談内容", "consultation"), ("支援内容", "support"), ("事業者の課題", "issues"),
                       ("今後の提案", "proposals")):
        parts.append(f"\n【{label}】\n{draft.get(key) or '—'}")
    if report.reason and report.status == "returned":
        parts.append(f"\n差し戻しの理由：{report.reason}")
    points = attendance.points_to_check(ctx, report.dispatch)
    if points:
        parts.append("\n【要確認】チェックイン・アウト\n" + "\n".join("・" + p for p in points))
    return "\n".join(parts)


def detail(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    """詳細: the whole report and fresh photo links, for someone allowed to see it."""
    report = find_report(fields.get("id"))
    if report is None:
        return [msg.text("報告書が見つかりませんでした。")]
    if not may_review(ctx, report):
        return refuse(ctx, "rep_detail", report.id)
    ctx.audit("report.viewed", target=f"report:{report.id}")
    photos = (report.draft or {}).get("photos") or []
    links = [(f"写真{n}", ctx.link_for(fid)) for n, fid in enumerate(photos, start=1)] if ctx.link_for else []
    return [msg.text(full_text(ctx, report)), report_card(ctx, report, decision_buttons(report)[1:], links)]


def review_queue(ctx: Context) -> list[Message]:
    """A reviewer's 「報告書」: the institution's reports waiting for a decision."""
    waiting = list(Report.select().join(Dispatch)
                   .where((Report.status == "submitted") & (Dispatch.institution == ctx.user.institution_id))  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                   .order_by(Report.submitted_at).limit(20))
    if not waiting:
        return [msg.text("確認待ちの報告書はありません。")]
    head = msg.text(f"確認待ちの報告書：{len(waiting)}件" + ("（古い4件を表示）" if len(waiting) > 4 else ""))
    return [head] + [report_card(ctx, r, decision_buttons(r)) for r in waiting[:4]]


# --- the decision: (reason →) confirm → apply --------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    key: str  # postback action
    verb: str  # 受理 / 差し戻し
    needs_reason: bool
    trigger: str  # the move in the report's status machine
    after: str  # the report's status once applied
    will: str  # 受理します / 差し戻します
    did: str  # 受理しました / 差し戻しました
    cannot: str  # 受理できません / 差し戻せません
    done_by: str  # (事務局で) 受理されました / 差し戻されました


OPS: dict[str, Op] = {op.key: op for op in [
    Op("rep_accept", "受理", False, "accept", "accepted", "受理します", "受理しました", "受理できません", "受理されました"),
    Op("rep_return", "差し戻し", True, "return", "returned", "差し戻します", "差し戻しました", "差し戻せません",
       "差し戻されました"),
]}


def present_status(ctx: Context, report: Report, op: Op) -> str:
    """One line for a decision tapped on a report no longer waiting: where it stands now
    and since when, said at once instead of a confirmation that could only be refused."""
    tz = ctx.program.timezone
    if report.status == "accepted":
        who = LineUser.get_or_none(LineUser.line_user_id == report.accepted_by) if report.accepted_by else None
        by = {"secretariat": "事務局", "reviewer": "支援機関"}.get((who.role if who else None) or "", "")
        at = clock.stamp(tz, report.accepted_at) if report.accepted_at else ""
        since = "・".join(p for p in (by, at) if p)
        return f"報告書No.{report.id} はすでに受理済みのため、{op.cannot}" + (f"（{since}）。" if since else "。")
    if report.status == "returned":
        return f"報告書No.{report.id} は差し戻し済みで専門家の再提出待ちのため、{op.cannot}。"
    if report.status == "draft":
        return f"報告書No.{report.id} はまだ提出されていないため（専門家が作成中）、{op.cannot}。"
    return f"報告書No.{report.id} は現在「{REPORT_LABELS.get(report.status, report.status)}」のため、{op.cannot}。"


class Reason(ReasonStep):
    title = "差し戻しの理由"
    help = "専門家にそのまま伝わります。何をどう直せばよいか、具体的に書いてください（500文字まで）。"

    def prompt(self, s: Session, ctx: Context) -> str:
        return f"報告書No.{s.data['report_id']} を差し戻す理由を入力してください。\n専門家にそのまま伝わります。"

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        """Decided by someone else while the reason was being typed: say so now, not after 「よろしいですか？」."""
        report = find_report(s.data["report_id"])
        if report is not None and report.status != "submitted":
            return Finish([msg.text(present_status(ctx, report, OPS[s.data["op"]]))])
        return super().answer(s, inp, ctx)


class DecisionConfirm(ConfirmStep):
    def describe(self, s: Session, ctx: Context) -> str:
        op = OPS[s.data["op"]]
        report = find_report(s.data["report_id"])
        who = f"（{expert_name(report.dispatch.expert)}さん・{report.dispatch.business.name}）" if report else ""
        text = f"報告書No.{s.data['report_id']}{who}を{op.will}。"
        if op.key == "rep_accept" and report is not None and report.net_yen is not None:
            assert report.fee_month is not None  # a sent report has its amounts and month
            text += f"\n支払額 {yen(report.net_yen)}（{month_label(report.fee_month)}）が支払いの対象になります。"
        return text

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        return apply(ctx, OPS[s.data["op"]], s.data["report_id"], s.data.get("reason"))


DECISION = Flow("report_decision", "報告書の確認", [Reason(), DecisionConfirm()])


def _decision_handler(key: str) -> Callable[[Session, Context, dict[str, str]], list[Message]]:
    op = OPS[key]

    def handler(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
        report = find_report(fields.get("id"))
        if report is None:
            return [msg.text("報告書が見つかりませんでした。")]
        if not may_review(ctx, report):
            return refuse(ctx, key, report.id)
        if report.status != "submitted":  # an old card: its present status at once, no confirmation
            return [msg.text(present_status(ctx, report, op))]
        return ENGINE.enter(DECISION, s, ctx, state="reason" if op.needs_reason else "confirm",
                            data={"op": op.key, "report_id": report.id}, back=[])

    return handler


def apply(ctx: Context, op: Op, report_id: object, reason: str | None) -> list[Message]:
    """Apply a confirmed decision (scope checked again: a card can be tapped long after it came)."""
    report = find_report(report_id)
    if report is None:
        return [msg.text(f"報告書No.{report_id} は見つかりませんでした。")]
    if not may_review(ctx, report):
        return refuse(ctx, op.key, report.id)
    now = utcnow()
    changes: dict[str, object] = ({"accepted_at": now, "accepted_by": ctx.user_id} if op.after == "accepted"
                                  else {"reason": reason})
    try:
        # Only from 確認待ち, in one statement: two people deciding at once cannot both win.
        REPORT.move(report, op.trigger, actor=ctx.user_id, reason=reason, event_id=ctx.event_id,
                    changes={**changes, "updated_at": now})
    except IllegalTransition:  # decided already (the machine audited the refusal)
        fresh = find_report(report.id)
        return [msg.text(present_status(ctx, fresh or report, op))]
    report = find_report(report.id)
    assert report is not None  # moved just above
    ctx.audit(f"report.{'accept' if op.after == 'accepted' else 'return'}", target=f"report:{report.id}",
              before="submitted", after=op.after, reason=reason)
    if op.after == "returned":
        schedule_after_return(ctx, report)
    notify_decision(ctx, op, report, reason)
    return [msg.text(f"報告書No.{report.id}（{expert_name(report.dispatch.expert)}さん）を{op.did}。")]


def notify_decision(ctx: Context, op: Op, report: Report, reason: str | None) -> None:
    d = report.dispatch
    expert_line_id = d.expert.user.line_user_id
    if op.after == "accepted":
        assert report.fee_month is not None  # a sent report has its amounts and month
        ctx.notify(expert_line_id, [msg.text(
            f"支援実施報告書が受理されました（報告書No.{report.id}）。\n{describe(ctx, d)}\n"
            f"謝金 {yen(report.gross_yen)}・源泉徴収 {withholding_text(ctx, report.withholding_yen)}・"
            f"交通費 {yen(report.travel_yen)}\n"
            f"支払額 {yen(report.net_yen)}（{month_label(report.fee_month)}）")], "report_accepted")
    else:
        ctx.notify(expert_line_id, [msg.text(
            f"支援実施報告書が差し戻されました（報告書No.{report.id}）。\n{describe(ctx, d)}\n理由：{reason}\n\n"
            "「報告書」と送ると内容を修正して再提出できます。", ["報告書"])], "report_returned")
    where = "事務局" if ctx.user.role == "secretariat" else "支援機関"
    for to in reviewer_ids(d.institution_id) + secretariat_ids():  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        if to != ctx.user_id:
            ctx.notify(to, [msg.text(f"報告書No.{report.id}（{expert_name(d.expert)}さん）は{where}で{op.done_by}。")],
                       "report_decided")


# --- the card's buttons, for the router --------------------------------------------------------------------

ACTIONS: dict[str, Callable[[Session, Context, dict[str, str]], list[Message]]] = {
    "rep_detail": detail,
    "rep_accept": _decision_handler("rep_accept"),
    "rep_return": _decision_handler("rep_return"),
}
