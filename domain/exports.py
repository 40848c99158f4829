"""What the secretariat pays: accepted reports of a fee month, as CSV and as a 全銀 file.

Only accepted reports are payable, and a fee belongs to the month
(Asia/Tokyo) of its dispatch date. The 全銀 file pays each expert once per
month — the sum of their net amounts (fee − withholding + travel) — into the
account **in force** (``Expert.profile``: a pending bank change is not used).
Account numbers and holder names are decrypted only here, in memory.
"""
from __future__ import annotations

from collections import OrderedDict
from datetime import timezone
from typing import Any

from domain import banks, payments
from program import Program
from storage.crypto import FieldCrypto
from storage.models import Dispatch, Expert, Report


def accepted_reports(month: str) -> list[Report]:
    return list(Report.select().join(Dispatch).where((Report.status == "accepted") & (Report.fee_month == month))
                .order_by(Dispatch.scheduled_at, Report.id))


def _tokyo_date(program: Program, utc_naive: Any) -> Any:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(program.timezone).date()


def fee_rows(program: Program, month: str) -> list[dict[str, Any]]:
    rows = []
    for report in accepted_reports(month):
        d = report.dispatch
        expert = d.expert
        rows.append({
            "application_no": expert.id,
            "name": f"{expert.family_name or ''}　{expert.given_name or ''}".strip(),
            "dispatch_no": d.id,
            "dispatch_date": _tokyo_date(program, d.scheduled_at),
            "business_name": d.business.name,
            "minutes": report.minutes,
            "gross_yen": report.gross_yen,
            "withholding_yen": report.withholding_yen,
            "travel_yen": report.travel_yen,
            "net_yen": report.net_yen,
            "report_accepted_on": _tokyo_date(program, report.accepted_at) if report.accepted_at else None,
        })
    return rows


def transfers(month: str, crypto: FieldCrypto) -> list[payments.Transfer]:
    """One transfer per expert: the month's net total, to the account in force."""
    totals: OrderedDict[int, int] = OrderedDict()
    experts: dict[int, Expert] = {}
    for report in accepted_reports(month):
        expert = report.dispatch.expert
        totals[expert.id] = totals.get(expert.id, 0) + int(report.net_yen or 0)
        experts[expert.id] = expert
    out = []
    for expert_id, amount in totals.items():
        if amount <= 0:  # e.g. a day cap already used and no travel: nothing to transfer
            continue
        profile = experts[expert_id].profile or experts[expert_id].draft or {}
        bank = banks.get_bank(profile.get("bank_code", ""))
        branch = banks.get_branch(profile.get("bank_code", ""), profile.get("branch_code", ""))
        out.append(payments.Transfer(
            bank_code=profile["bank_code"],
            branch_code=profile["branch_code"],
            account_type=profile.get("account_type", "普通"),
            account_number=crypto.decrypt(profile["account_number_enc"]),
            holder_kana=crypto.decrypt(profile["holder_enc"]),
            amount_yen=amount,
            customer_code=str(expert_id),
            bank_name_kana=payments.name_kana_for_field(bank.kana if bank else ""),
            branch_name_kana=payments.name_kana_for_field(branch.kana if branch else ""),
        ))
    return out


def zengin_file(program: Program, month: str, crypto: FieldCrypto) -> bytes:
    if program.payer is None:
        raise ValueError("program.toml に [payer]（委託者コード・仕向銀行など）がありません")
    return payments.zengin_transfer_file(program.payer, program.transfer_date(month), transfers(month, crypto))
