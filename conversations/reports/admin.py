"""The secretariat's report commands: /reports (the list, or one report) and /fees (a month's totals)."""
from __future__ import annotations

import re
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.reports.common import yen
from conversations.reports.fee import month_label
from conversations.reports.review import detail
from domain import clock
from domain.names import expert_name
from domain.statuses import REPORT_LABELS
from storage.models import Dispatch, Report
from storage.sessions import Session

REPORTS_USAGE = "/reports [submitted|returned|accepted|draft|all|<報告書No>] — 報告書の一覧（既定は確認待ち）"
FEES_USAGE = "/fees [YYYY-MM] — 受理済み報告書の謝金の月別集計（専門家ごと、既定は今月）"
_STATUS_WORDS = {"確認待ち": "submitted", "提出済み": "submitted", "差し戻し": "returned", "受理": "accepted",
                 "受理済み": "accepted", "作成中": "draft", "すべて": "all"}


def reports_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if args and args[0].lstrip("No.#").isdigit():
        return detail(s, ctx, {"id": args[0].lstrip("No.#")})
    status = _STATUS_WORDS.get(args[0], args[0]) if args else "submitted"
    if status not in REPORT_LABELS and status != "all":
        return [msg.text("使い方：" + REPORTS_USAGE)]
    query = Report.select().join(Dispatch).order_by(Dispatch.scheduled_at.desc(), Report.id.desc())
    if status != "all":
        query = query.where(Report.status == status)
    total = query.count()
    lines = []
    for r in query.limit(30):
        d = r.dispatch
        lines.append(f"報告書No.{r.id} 申請No.{d.expert_id} 派遣No.{d.id} {expert_name(d.expert)} {clock.day_text(ctx.program.timezone, d.scheduled_at)}"  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                     f" 謝金{yen(r.gross_yen)} 支払額{yen(r.net_yen)}"
                     + (f"（{REPORT_LABELS[r.status]}）" if status == "all" else ""))
    title = "報告書" + ("（すべて）" if status == "all" else f"（{REPORT_LABELS[status]}）") + f"：{total}件"
    if total > 30:
        title += "（新しい30件を表示）"
    return [msg.text(title + "\n" + ("\n".join(lines) or "該当なし")
                     + "\n\n詳細は「/reports <報告書No>」。")]


def fees_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if not args:  # no month: this month, in the program's time
        month = ctx.program.now().strftime("%Y-%m")
    else:
        match = re.fullmatch(r"(\d{4})[-/年](\d{1,2})月?", args[0])
        if match is None or not 1 <= int(match.group(2)) <= 12:
            return [msg.text("使い方：" + FEES_USAGE)]
        month = f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"
    rows = (Report.select().join(Dispatch)
            .where((Report.status == "accepted") & (Report.fee_month == month)).order_by(Dispatch.expert, Report.id))
    per: dict[int, dict[str, Any]] = {}
    for r in rows:
        e = per.setdefault(r.dispatch.expert_id, {"name": expert_name(r.dispatch.expert), "n": 0, "gross": 0,  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                                                  "withholding": 0, "travel": 0, "net": 0})
        e["n"] += 1
        for key, value in (("gross", r.gross_yen), ("withholding", r.withholding_yen), ("travel", r.travel_yen),
                           ("net", r.net_yen)):
            e[key] += int(value or 0)
    unaccepted = Report.select().where((Report.status == "submitted") & (Report.fee_month == month)).count()
    lines = [f"申請No.{eid} {e['name']}：{e['n']}件 謝金{yen(e['gross'])} 源泉{yen(e['withholding'])}"
             f" 交通費{yen(e['travel'])} 支払額{yen(e['net'])}" for eid, e in per.items()]
    total = {k: sum(e[k] for e in per.values()) for k in ("n", "gross", "withholding", "travel", "net")}
    text = (f"謝金集計 {month_label(month)}（受理済みのみ）\n" + ("\n".join(lines) or "受理済みの報告書はありません。")
            + f"\n\n合計：{total['n']}件 謝金{yen(total['gross'])} 源泉{yen(total['withholding'])}"
              f" 交通費{yen(total['travel'])} 支払額{yen(total['net'])}")
    if unaccepted:
        text += f"\n（確認待ち{unaccepted}件は含みません）"
    return [msg.text(text)]
