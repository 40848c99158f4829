"""Secretariat lists are paged, never clipped: a page of 20 says which rows these are out of
how many, and 「次の20件」 (a quick reply typing 「/pending 2ページ」) turns the page."""
from __future__ import annotations

import re

from conversations.kit.paging import split_page
from storage.models import Expert, LineUser
from tests.actors import SEC, institution_with_reviewer, secretariat, submitted_application


def _numbers(text: str, prefix: str) -> list[int]:
    return [int(n) for n in re.findall(prefix + r"(\d+)", text)]


def test_the_page_word_is_read_from_the_last_argument():
    assert split_page(["山田", "2ページ"]) == (2, ["山田"])
    assert split_page(["山田", "２ページ"]) == (2, ["山田"])
    assert split_page(["12"]) == (1, ["12"])  # /find 12 is application No.12, not a page
    assert split_page(["3"], bare_number=True) == (3, [])
    assert split_page([]) == (1, [])


def test_pending_is_paged_with_a_next_button_and_every_application_appears_once(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "ページ支援機関", "U" + "1ee" + "7" * 29)
    experts = [submitted_application(inst, user=f"U{n:032x}") for n in range(45)]
    Expert.update(status="pending_secretariat").execute()

    first = bot_app.text(SEC, "/pending")[0]
    assert "全45件（1〜20件目）" in first
    assert bot_app.last_quick_reply(SEC) == ["次の20件"]
    seen = _numbers(first, "No.")
    for page in (2, 3):
        text = bot_app.text(SEC, f"/pending {page}ページ")[0]
        seen += _numbers(text, "No.")
    assert "41〜45件目" in text
    assert bot_app.last_quick_reply(SEC) == ["前の20件"]
    assert sorted(seen) == sorted(e.id for e in experts)
    # Past the end: the last page, not an empty one.
    assert "41〜45件目" in bot_app.text(SEC, "/pending 9")[0]


def test_staff_and_find_are_paged_too(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "職員支援機関", "U" + "1ee" + "8" * 29)
    for n in range(30):
        LineUser.create(line_user_id=f"U{n:031x}f", role="reviewer", institution=inst)
    first = bot_app.text(SEC, "/staff")[0]
    assert "全32件（1〜20件目）" in first and len(_numbers(first, "利用者No.")) == 20
    assert bot_app.last_quick_reply(SEC) == ["次の20件"]
    second = bot_app.text(SEC, "/staff 2ページ")[0]
    assert "21〜32件目" in second and len(_numbers(second, "利用者No.")) == 12

    for n in range(25):
        submitted_application(inst, user=f"U{n:031x}e", family_name="鈴木", given_name=f"一郎{n}")
    found = bot_app.text(SEC, "/find 鈴木")[0]
    assert "検索結果：全25件（1〜20件目）" in found
    assert bot_app.last_quick_reply(SEC) == ["次の20件"]
    assert "21〜25件目" in bot_app.text(SEC, "/find 鈴木 2ページ")[0]


def test_fees_and_reports_are_paged_and_the_months_totals_are_whole(bot_app):
    from datetime import datetime

    from domain.fee_totals import refill_fee_totals
    from storage.models import Report
    from tests.actors import REVIEWER, commissioned_expert, dispatch_for

    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "謝金支援機関", REVIEWER)
    when = datetime(2026, 6, 10, 1, 0)
    for n in range(25):
        expert = commissioned_expert(inst, user=f"U{n:031x}c", family_name="佐藤", given_name=f"次郎{n}")
        d = dispatch_for(expert, REVIEWER, when=when, status="completed")
        Report.create(dispatch=d, status="accepted", fee_month="2026-06", minutes=60, gross_yen=5280,
                      withholding_yen=0, travel_yen=100, net_yen=5380)
    refill_fee_totals()  # the sums /fees reads, as the report machine keeps them
    first = bot_app.text(SEC, "/fees 2026-06")[0]
    assert "専門家25名のうち1〜20人目" in first and first.count("申請No.") == 20
    assert "合計：25件 謝金132,000円" in first and "支払額134,500円" in first  # the month's totals, on every page
    assert bot_app.last_quick_reply(SEC) == ["次の20件"]
    second = bot_app.text(SEC, "/fees 2026-06 2ページ")[0]
    assert "21〜25人目" in second and second.count("申請No.") == 5 and "合計：25件" in second

    listing = bot_app.text(SEC, "/reports accepted")[0]
    assert "報告書（受理済み）：全25件（1〜20件目）" in listing and listing.count("報告書No.") == 20
    assert "21〜25件目" in bot_app.text(SEC, "/reports accepted 2ページ")[0]


def test_the_reviewers_request_list_is_paged_ten_cards_at_a_time(bot_app):
    from datetime import datetime, timedelta

    from tests.actors import REVIEWER, commissioned_expert, dispatch_for

    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "依頼支援機関", REVIEWER)
    expert = commissioned_expert(inst)
    start = datetime.utcnow() + timedelta(days=3)
    made = [dispatch_for(expert, REVIEWER, when=start + timedelta(hours=n), status="accepted").id for n in range(12)]
    texts = bot_app.text(REVIEWER, "依頼一覧")
    assert texts[-1] == "チェックイン前の派遣（日時の早い順）：全12件（1〜10件目）"
    assert bot_app.last_quick_reply(REVIEWER) == ["次の10件"]
    carousel = bot_app.line.messages_for(REVIEWER)[-2]
    assert len(carousel["contents"]["contents"]) == 10
    texts = bot_app.text(REVIEWER, "依頼一覧 2ページ")
    assert texts[-1] == "チェックイン前の派遣（日時の早い順）：全12件（11〜12件目）"
    assert f"派遣No.{made[-1]}" in texts[0]
