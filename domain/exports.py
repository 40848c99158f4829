"""What the secretariat pays: accepted reports of a fee month, as CSV and as a 全銀 file.

Only accepted reports are payable, and a fee belongs to the month
(Asia/Tokyo) of its dispatch date. The 全銀 file pays each expert once per
month — the sum of their net amounts (fee − withholding + travel) — into the
account **in force** (``Expert.profile``: a pending bank change is not used).
Account numbers and holder names are decrypted only here, in memory.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from peewee import fn

from domain import banks, clock, payments
from domain.names import NAME_COLUMNS, expert_name
from program import Program
from storage.crypto import FieldCrypto
from storage.models import Business, Dispatch, Expert, Report

EXPERT_BATCH = 500  # experts whose accounts are read (and decrypted) per query


def _accepted(month: str) -> Any:
    return (Report.status == "accepted") & (Report.fee_month == month)


def accepted_count(month: str) -> int:
    return Report.select().where(_accepted(month)).count()


def accepted_reports(month: str) -> Iterator[Report]:
    """The month's accepted reports with their dispatch, expert and business, in one query,
    streamed (a month at national scale is ~4,000 reports: never all held at once)."""
    return (Report.select(Report, Dispatch, Business, *NAME_COLUMNS).join(Dispatch).join(Expert)
            .switch(Dispatch).join(Business).where(_accepted(month))
            .order_by(Dispatch.scheduled_at, Report.id).iterator())


def fee_rows(program: Program, month: str) -> Iterator[dict[str, Any]]:
    tz = program.timezone
    for report in accepted_reports(month):
        d = report.dispatch
        expert = d.expert
        yield {
            "application_no": expert.id,
            "name": expert_name(expert),
            "dispatch_no": d.id,
            "dispatch_date": clock.local_date(tz, d.scheduled_at),
            "business_name": d.business.name,
            "minutes": report.minutes,
            "gross_yen": report.gross_yen,
            "withholding_yen": report.withholding_yen,
            "travel_yen": report.travel_yen,
            "net_yen": report.net_yen,
            "report_accepted_on": clock.local_date(tz, report.accepted_at) if report.accepted_at else None,
        }


def transfers(month: str, crypto: FieldCrypto) -> list[payments.Transfer]:
    """One transfer per expert: the month's net total (summed in SQL), to the account in force,
    in the order of each expert's first dispatch of the month."""
    totals = cast(list[dict[str, Any]], list(
        Report.select(Dispatch.expert.alias("eid"), fn.SUM(Report.net_yen).alias("amount"))
        .join(Dispatch).where(_accepted(month)).group_by(Dispatch.expert)
        .order_by(fn.MIN(Dispatch.scheduled_at), Dispatch.expert).dicts()))
    out = []
    bank_kana: dict[tuple[str, str], tuple[str, str]] = {}  # (bank, branch) → field-ready kana: a few hundred, not 4,000
    for start in range(0, len(totals), EXPERT_BATCH):
        batch = [row for row in totals[start:start + EXPERT_BATCH] if int(row["amount"] or 0) > 0]
        # (an amount of 0: e.g. a day cap already used and no travel — nothing to transfer)
        # Only the approved profile (the account in force) is read and decrypted, not the draft:
        # the draft is read only for an expert without a profile (none who was ever paid).
        experts = {e.id: e for e in Expert.select(Expert.id, Expert.profile)
                   .where(Expert.id.in_([row["eid"] for row in batch]))}
        for row in batch:
            expert = experts[row["eid"]]
            profile = expert.profile or Expert.get_by_id(expert.id).draft or {}
            if not profile.get("account_number_enc"):
                # Erased after 退会 and its records_years: a month that old is no longer paid from here.
                raise ValueError(f"申請No.{expert.id} の振込口座が保管されていません（退会後の保管期間を過ぎて削除済み）")
            codes = (profile.get("bank_code", ""), profile.get("branch_code", ""))
            if codes not in bank_kana:
                bank, branch = banks.get_bank(codes[0]), banks.get_branch(*codes)
                bank_kana[codes] = (payments.name_kana_for_field(bank.kana if bank else ""),
                                    payments.name_kana_for_field(branch.kana if branch else ""))
            out.append(payments.Transfer(
                bank_code=profile["bank_code"],
                branch_code=profile["branch_code"],
                account_type=profile.get("account_type", "普通"),
                account_number=crypto.decrypt(profile["account_number_enc"]),
                holder_kana=crypto.decrypt(profile["holder_enc"]),
                amount_yen=int(row["amount"]),
                customer_code=str(expert.id),
                bank_name_kana=bank_kana[codes][0],
                branch_name_kana=bank_kana[codes][1],
            ))
    return out


def zengin_file(program: Program, month: str, crypto: FieldCrypto) -> bytes:
    if program.payer is None:
        raise ValueError("program.toml に [payer]（委託者コード・仕向銀行など）がありません")
    return payments.zengin_transfer_file(program.payer, program.transfer_date(month), transfers(month, crypto))
