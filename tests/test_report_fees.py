"""What a report pays (``domain.fees``): ``Program.fee`` fed from the records, with no conversation.

The draft's minutes and travel, the "day" cap counting only the expert's
other *sent* reports on a dispatch the same Tokyo day, and the fee month as
the Tokyo month of the dispatch date. The whole flow is tested in
``test_reports``; here the records are written directly.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from domain import fees
from program import Program, load_program
from storage import repo
from storage.models import Business, Dispatch, Expert, Report
from tests.actors import BUSINESS_LAT, BUSINESS_LNG, EXPERT, REVIEWER

JUNE_10_AT_10 = datetime(2026, 6, 10, 1, 0)  # 10:00 in Tokyo, stored as UTC
JULY_1_AT_0030 = datetime(2026, 6, 30, 15, 30)  # 00:30 on 1 July in Tokyo, still 30 June in UTC


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program()


@pytest.fixture
def expert(database) -> Expert:
    return new_expert(EXPERT)


def new_expert(line_user_id: str) -> Expert:
    inst = repo.create_institution(f"謝金商工会{line_user_id[-4:]}", "よろず")
    return Expert.create(user=repo.ensure_user(line_user_id), status="commissioned", institution=inst, draft={},
                         profile={})


def report_for(expert: Expert, when: datetime, *, status: str = "draft", gross_yen: int | None = None,
               **draft: object) -> Report:
    business = Business.create(institution=expert.institution, name="株式会社謝金", latitude=BUSINESS_LAT,
                               longitude=BUSINESS_LNG)
    d = Dispatch.create(business=business, institution=expert.institution, expert=expert,
                        requested_by=repo.ensure_user(REVIEWER), theme="経営戦略", scheduled_at=when, status="completed")
    return Report.create(dispatch=d, status=status, draft=dict(draft), gross_yen=gross_yen)


def test_the_fee_is_the_programs_for_the_drafts_minutes_and_travel(program, expert):
    report = report_for(expert, JUNE_10_AT_10, minutes=130, travel_yen=1_200)
    assert fees.compute_fee(program, report) == program.fee(130, travel_yen=1_200)
    assert fees.compute_fee(program, report_for(expert, JUNE_10_AT_10)) == program.fee(0)  # nothing answered yet


def test_a_day_cap_counts_only_the_experts_other_sent_reports_that_tokyo_day(program, expert):
    per_day = dataclasses.replace(program, cap_scope="day")
    report = report_for(expert, JUNE_10_AT_10, minutes=120)
    report_for(expert, JUNE_10_AT_10 - timedelta(hours=1), status="submitted", gross_yen=20_000)
    report_for(expert, JUNE_10_AT_10 + timedelta(hours=5), status="accepted", gross_yen=6_000)
    report_for(expert, JUNE_10_AT_10 + timedelta(hours=2), status="draft", gross_yen=9_999)  # not sent
    report_for(expert, JUNE_10_AT_10 + timedelta(hours=3), status="returned", gross_yen=9_999)  # not sent again
    report_for(expert, JUNE_10_AT_10 + timedelta(hours=15), status="submitted", gross_yen=9_999)  # 11 June in Tokyo
    report_for(new_expert("U" + "f" * 32), JUNE_10_AT_10, status="submitted", gross_yen=9_999)  # someone else
    assert fees.already_paid_today(per_day, report) == 26_000
    assert fees.compute_fee(per_day, report) == per_day.fee(120, already_paid_today_yen=26_000)
    assert fees.compute_fee(per_day, report).gross_yen == 31_680 - 26_000
    assert fees.compute_fee(program, report) == program.fee(120)  # cap per dispatch: the day does not count


def test_the_fee_month_is_the_tokyo_month_of_the_dispatch(program, expert):
    assert fees.dispatch_day(program, report_for(expert, JULY_1_AT_0030).dispatch).isoformat() == "2026-07-01"
    assert fees.fee_month(program, report_for(expert, JULY_1_AT_0030)) == "2026-07"
    assert fees.fee_month(program, report_for(expert, JUNE_10_AT_10)) == "2026-06"
