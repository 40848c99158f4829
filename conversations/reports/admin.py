"""The secretariat's report commands: /reports (the list, or one report) and /fees (a month's totals)."""
from __future__ import annotations

import re

from linebot.v3.messaging import Message

from conversations.dispatch import attendance
from conversations.dispatch.attendance_rules import with_checks
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.paging import page_of, split_page
from conversations.reports.common import times_text, yen
from conversations.reports.fee import month_label
from conversations.reports.review import detail
from domain import clock, fee_totals
from domain.names import NAME_COLUMNS, expert_name
from domain.statuses import REPORT_LABELS
from storage.models import Dispatch, Expert, Report
from storage.sessions import Session

REPORTS_USAGE = "/reports [submitted|returned|accepted|draft|all|<報告書No>] [Nページ] — 報告書の一覧（既定は確認待ち）"
FEES_USAGE = "/fees [YYYY-MM] [Nページ] — 受理済み報告書の謝金の月別集計（専門家ごと、既定は今月）"
_STATUS_WORDS = {"確認待ち": "submitted", "提出済み": "submitted", "差し戻し": "returned", "受理": "accepted",
                 "受理済み": "accepted", "作成中": "draft", "すべて": "all"}


def reports_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    number, args = split_page(args)
    if args and args[0].lstrip("No.#").isdigit():
        return detail(s, ctx, {"id": args[0].lstrip("No.#")})
    status = _STATUS_WORDS.get(args[0], args[0]) if args else "submitted"
    if status not in REPORT_LABELS and status != "all":
        return [msg.text("使い方：" + REPORTS_USAGE)]
    # The dispatch and the expert come in the same query: no lookup per row. Newest report
    # first, read from the (status, id) index: ordering 39,000 accepted reports by their
    # dispatch's date would sort them all for every page.
    query = (Report.select(Report, Dispatch, *NAME_COLUMNS).join(Dispatch).join(Expert)
             .order_by(Report.id.desc()))
    count = Report.select()
    if status != "all":
        query, count = query.where(Report.status == status), count.where(Report.status == status)
    page = page_of(query, number, count=count)
    with_checks(r.dispatch for r in page.items)
    lines = []
    for r in page.items:
        d = r.dispatch
        lines.append(f"報告書No.{r.id} 申請No.{d.expert_id} 派遣No.{d.id} {expert_name(d.expert)} {clock.day_text(ctx.program.timezone, d.scheduled_at)}"
                     f" {times_text(ctx, d)} 謝金{yen(r.gross_yen)} 支払額{yen(r.net_yen)}"
                     + (f"（{REPORT_LABELS[r.status]}）" if status == "all" else "")
                     + ("【要確認】" if attendance.points_to_check(ctx, d) else ""))
    title = page.heading("報告書" + ("（すべて）" if status == "all" else f"（{REPORT_LABELS[status]}）"))
    command = "/reports" + ("" if status == "submitted" else f" {status}")
    return [msg.text(title + "\n" + ("\n".join(lines) or "該当なし")
                     + ("\n\n【要確認】：チェックイン・アウトに確認事項があります。" if any("【要確認】" in ln for ln in lines)
                        else "\n") + "\n詳細は「/reports <報告書No>」。", page.choices(command))]


def fees_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    """A month's accepted fees per expert, 20 experts a page, the month's totals on every page.

    Read from the sums the report machine keeps (``domain.fee_totals``): a page of the month's
    per-expert rows and the month's row (its totals, how many experts), so the cost does not
    grow with the month's reports; only the names shown are read and decrypted."""
    number, args = split_page(args)
    if not args:  # no month: this month, in the program's time
        month = ctx.program.now().strftime("%Y-%m")
    else:
        match = re.fullmatch(r"(\d{4})[-/年](\d{1,2})月?", args[0])
        if match is None or not 1 <= int(match.group(2)) <= 12:
            return [msg.text("使い方：" + FEES_USAGE)]
        month = f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"
    total = fee_totals.month_sums(month)
    page = page_of(fee_totals.experts_of(month), number, count=total.experts)
    names = {e.id: expert_name(e) for e in Expert.select(*NAME_COLUMNS).where(Expert.id.in_([row.expert_id for row in page.items]))}
    lines = [f"申請No.{row.expert_id} {names.get(row.expert_id, '—')}：{row.n}件 謝金{yen(row.gross_yen)}"
             f" 源泉{yen(row.withholding_yen)} 交通費{yen(row.travel_yen)} 支払額{yen(row.net_yen)}" for row in page.items]
    unaccepted = Report.select().where((Report.status == "submitted") & (Report.fee_month == month)).count()
    heading = f"謝金集計 {month_label(month)}（受理済みのみ）"
    if page.total > page.size:
        heading += f"\n専門家{page.total:,}名のうち{page.first:,}〜{page.last:,}人目"
    text = (heading + "\n" + ("\n".join(lines) or "受理済みの報告書はありません。")
            + f"\n\n合計：{total.n:,}件 謝金{yen(total.gross_yen)} 源泉{yen(total.withholding_yen)}"
              f" 交通費{yen(total.travel_yen)} 支払額{yen(total.net_yen)}")
    if unaccepted:
        text += f"\n（確認待ち{unaccepted:,}件は含みません）"
    return [msg.text(text, page.choices(f"/fees {month}"))]
