"""How a report's fee is worded: the month, the withholding and the one-line breakdown.

The amounts themselves are domain logic (``domain.fees``: ``Program.fee``
for the draft, the "day" cap, the fee month); this module only writes them
for people. The expert's summary and receipt, the reviewer's card and the
secretariat's totals word a fee the same way, so the wording lives here once.
"""
from __future__ import annotations

from conversations.kit.context import Context
from conversations.reports.common import yen
from program import FeeBreakdown


def month_label(month: str) -> str:
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月分"


def withholding_text(ctx: Context, amount: int | None) -> str:
    """源泉徴収: 「なし」 while the program withholds nothing, else the amount."""
    return yen(amount) if ctx.program.withholding or amount else "なし"


def fee_line(ctx: Context, fee: FeeBreakdown, month: str) -> str:
    capped = "（上限適用）" if fee.capped else ""
    withholding = withholding_text(ctx, fee.withholding_yen)
    return (f"謝金 {yen(fee.gross_yen)}{capped}・源泉徴収 {withholding}・交通費 {yen(fee.travel_yen)}\n"
            f"支払額 {yen(fee.net_yen)}（{month_label(month)}）")
