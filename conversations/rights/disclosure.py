"""登録内容 (保有個人データの開示): everything the program holds about the expert, in LINE.

Why in LINE and why from the records themselves: the person may ask what is
held about them at any time, and the answer must be what the bot actually
works from — the summary rows of the answers in force (``items.summary_rows``,
the same rows they confirmed and reviewers saw; the draft before approval),
the photos as buttons with short-lived signed links, the status history
(the audit log's ``status.change`` rows) and every consent. Each disclosure
is audited (``data.disclosed``). One reply holds at most five messages, so
the history and the consents share one text.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.registration import items
from domain import clock, lifecycle, versions
from storage.models import AuditLog, ConditionsConsent, Dispatch, Expert, Report

WORDS = ("登録内容", "登録情報", "個人情報")
HISTORY_LINES = 30  # the latest moves; older ones stay in the audit log
# Statuses whose answers in force are the approved profile (kept after 退会 for the accounts).
PROFILE_STATUSES = ("registered", "conditions_agreed", "commissioned", "withdrawn")
_REASONED = ("returned", "rejected", "withdrawn")  # moves whose reason the expert was told


def answers_held(expert: Expert) -> dict[str, Any]:
    """The answers in force: the approved profile, else the application as filled in."""
    if expert.status in PROFILE_STATUSES and expert.profile is not None:
        return dict(expert.profile)
    return dict(expert.draft or {})


def messages(ctx: Context, expert: Expert | None) -> list[Message]:
    """The disclosure: who and where (text), the answers (Flex), the photos (Flex), history and consents (text)."""
    if expert is None:
        return [msg.text("専門家登録の情報はありません。\nこのアカウントについて保有しているのは、"
                         "通知の送信先となるLINEのユーザーIDのみです。", ["登録", "ヘルプ"])]
    ctx.audit("data.disclosed", target=f"expert:{expert.id}")
    answers = answers_held(expert)
    rows: list[flex.Row] = [(label, value, None) for label, value, _ in items.summary_rows(answers)]
    out: list[Message] = [msg.text(_intro(expert)), flex.summary_bubble("登録内容（保有個人データ）", rows, None)]
    links = _photo_links(ctx, answers)
    if links:
        out.append(flex.links_card("提出写真", "ボタンを押すと写真を表示します（リンクの有効期限は短時間です。"
                                            "期限切れの場合は、もう一度「登録内容」と送ってください）。", links))
    out.append(msg.text(_history(ctx, expert) + "\n\n" + _consents(ctx, expert, answers), ["状況", "ヘルプ"]))
    return out


def _intro(expert: Expert) -> str:
    dispatches = Dispatch.select().where(Dispatch.expert == expert.id).count()
    reports = Report.select().join(Dispatch).where(Dispatch.expert == expert.id).count()
    text = (f"保有している個人データを開示します。\n申請No.{expert.id}（{lifecycle.LABELS.get(expert.status, expert.status)}）\n"
            f"派遣の記録：{dispatches}件／報告書：{reports}件")
    if expert.status == "withdrawn":
        text += "\n退会により削除した項目は「—」と表示しています。"
    return text


def _photo_links(ctx: Context, answers: dict[str, Any]) -> list[tuple[str, str]]:
    photos = answers.get("photos") or {}
    if ctx.link_for is None:
        return []
    return [(photo.what, ctx.link_for(photos[photo.key])) for photo in items.PHOTOS if photo.key in photos]


def _history(ctx: Context, expert: Expert) -> str:
    moves = list(AuditLog.select().where((AuditLog.action == "status.change") & (AuditLog.target == f"expert:{expert.id}"))
                 .order_by(AuditLog.id.desc()).limit(HISTORY_LINES))
    if not moves:
        return "【手続きの履歴】\nまだありません（申請は送信されていません）。"
    lines = []
    for move in reversed(moves):
        before, after = move.before or "", move.after or ""
        line = (f"{clock.stamp(ctx.program.timezone, move.at)} "
                f"{lifecycle.LABELS.get(before, before)} → {lifecycle.LABELS.get(after, after)}")
        if move.reason and after in _REASONED:
            line += f"（理由：{move.reason}）"
        lines.append(line)
    return "【手続きの履歴】\n" + "\n".join(lines)


def _consents(ctx: Context, expert: Expert, answers: dict[str, Any]) -> str:
    tz = ctx.program.timezone
    lines = []
    terms = list(AuditLog.select().where(AuditLog.action.in_(["terms.agreed", "terms.declined"])
                                         & (AuditLog.target == f"expert:{expert.id}")).order_by(AuditLog.id))
    for entry in terms:
        agreed = entry.action == "terms.agreed"
        version = entry.after if agreed else entry.reason
        lines.append(f"個人情報の取扱い（{version}）：{'同意' if agreed else '同意しない'}　{clock.stamp(tz, entry.at)}")
    if not terms and answers.get("terms_version"):
        lines.append(f"個人情報の取扱い（{answers['terms_version']}）：同意")
    history = versions.conditions_history(ctx.program.conditions.version)
    for consent in ConditionsConsent.select().where(ConditionsConsent.expert == expert.id).order_by(ConditionsConsent.id):
        name = versions.edition_name(consent.version, history, inside_brackets=True)
        line = f"委嘱条件（{name}）：{'同意' if consent.agreed else '同意しない'}　{clock.stamp(tz, consent.at)}"
        if not consent.agreed and consent.reason:
            line += f"（理由：{consent.reason}）"
        lines.append(line)
    for entry in AuditLog.select().where((AuditLog.action == "commission.accepted")
                                         & (AuditLog.target == f"expert:{expert.id}")).order_by(AuditLog.id):
        lines.append(f"就任承諾書：提出　{clock.stamp(tz, entry.at)}")
    return "【同意の記録】\n" + ("\n".join(lines) if lines else "まだありません。")
