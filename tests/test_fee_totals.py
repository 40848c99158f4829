"""/fees reads the sums the report machine keeps (``FeeTotal``, ``FeeMonth``: ``domain.fee_totals``).

Through the webhook as LINE sends it: at every step of reports' lives (sent, returned, sent
again, accepted; a second report of the same expert and month, another expert, another month)
the kept rows are the sums of the accepted reports themselves (``fees_by_scan``, what /fees
summed before v12), and /fees prints, page for page, exactly what it printed then. Many
experts page as before with the totals on every page; two reviewers accepting at once both
count; and a database from before the sums (v11) gets them filled by the same rule.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from playhouse.migrate import SchemaMigrator

from conversations.kit.paging import PAGE_SIZE, Page
from conversations.reports.common import yen
from conversations.reports.fee import month_label
from domain import fee_totals
from domain.fee_totals import refill_fee_totals, refresh_fee_totals
from domain.names import NAME_COLUMNS, expert_name
from domain.statuses import REPORT, REPORT_TRANSITIONS
from storage import repo
from storage.db import database as db_proxy
from storage.migrations import LATEST, V12_PAID, _v12_fee_sums, apply_migrations
from storage.models import Dispatch, Expert, FeeMonth, FeeTotal, Report, SchemaVersion, utcnow
from tests.actors import (
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    tap,
)
from tests.test_reports import ANSWERS, JUNE_10_AT_10, OTHER_EXPERT, checked

JUNE, JULY = "2026-06", "2026-07"
JULY_1_AT_0030 = datetime(2026, 6, 30, 15, 30)  # 00:30 on 1 July in Tokyo, still 30 June in UTC
Sums = tuple[list[tuple[int, ...]], tuple[int, ...]]


def kept(month: str) -> Sums:
    """The month as the kept rows hold it, in the shape of ``fee_totals.fees_by_scan``."""
    rows = [(t.expert_id, t.n, t.gross_yen, t.withholding_yen, t.travel_yen, t.net_yen)
            for t in fee_totals.experts_of(month)]
    m = fee_totals.month_sums(month)
    return rows, (m.experts, m.n, m.gross_yen, m.withholding_yen, m.travel_yen, m.net_yen)


def agree(month: str) -> Sums:
    """The kept rows are the sums of the month's accepted reports, and no row is kept for nothing."""
    assert kept(month) == fee_totals.fees_by_scan(month), month
    paid = {r.fee_month for r in Report.select(Report.fee_month).where(Report.status == "accepted")}
    assert {m.fee_month for m in FeeMonth.select()} == paid == {t.fee_month for t in FeeTotal.select()}
    return kept(month)


def old_fees_text(month: str, number: int = 1) -> str:
    """What /fees printed before v12: its queries (``fees_by_scan``) and its wording, verbatim."""
    rows, (experts, n, gross, withholding, travel, net) = fee_totals.fees_by_scan(month)
    number = min(max(number, 1), max((experts + PAGE_SIZE - 1) // PAGE_SIZE, 1))
    page = Page(rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], number, experts)
    names = {e.id: expert_name(e) for e in Expert.select(*NAME_COLUMNS).where(Expert.id.in_([r[0] for r in page.items]))}
    lines = [f"申請No.{eid} {names.get(eid, '—')}：{k}件 謝金{yen(g)} 源泉{yen(w)} 交通費{yen(t)} 支払額{yen(p)}"
             for eid, k, g, w, t, p in page.items]
    unaccepted = Report.select().where((Report.status == "submitted") & (Report.fee_month == month)).count()
    heading = f"謝金集計 {month_label(month)}（受理済みのみ）"
    if page.total > page.size:
        heading += f"\n専門家{page.total:,}名のうち{page.first:,}〜{page.last:,}人目"
    text = (heading + "\n" + ("\n".join(lines) or "受理済みの報告書はありません。")
            + f"\n\n合計：{n:,}件 謝金{yen(gross)} 源泉{yen(withholding)} 交通費{yen(travel)} 支払額{yen(net)}")
    if unaccepted:
        text += f"\n（確認待ち{unaccepted:,}件は含みません）"
    return text


def fees(bot_app, month: str, number: int = 1) -> str:
    """/fees as the secretariat asks it, checked against what it printed before."""
    text = bot_app.text(SEC, f"/fees {month}" + (f" {number}ページ" if number > 1 else ""))[0]
    assert text == old_fees_text(month, number)
    return text


def completed(expert: Expert, when: datetime, minutes: int) -> Dispatch:
    d = dispatch_for(expert, REVIEWER, when=when, status="completed", name=f"株式会社集計{when:%m%d%H}")
    checked(d, when, minutes)
    return d


def send_report(bot_app, user: str, minutes: str, travel: str = "なし", route: str | None = None) -> Report:
    """The expert writes the report of their checked-out dispatch and sends it."""
    assert "【相談内容】" in bot_app.text(user, "報告書")[-1]
    for answer in [*ANSWERS, minutes, travel, *([route] if route else []), "なし"]:
        bot_app.text(user, answer)
    assert "支援実施報告書を送信しました" in tap(bot_app, user, "p=submit")[0]
    return Report.select().join(Dispatch).join(Expert).where(Expert.user == repo.ensure_user(user)) \
        .order_by(Report.id.desc()).get()


def decide(bot_app, report: Report, trigger: str) -> None:
    tap(bot_app, REVIEWER, f"a=rep_{trigger}&id={report.id}")
    if trigger == "return":
        bot_app.text(REVIEWER, "対面時間の内訳を書いてください。")
    assert ("受理しました" if trigger == "accept" else "差し戻しました") in tap(bot_app, REVIEWER, "c=yes")[0]


def test_the_sums_follow_reports_sent_returned_sent_again_and_accepted(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "集計商工会", REVIEWER)
    expert = commissioned_expert(inst)
    other = commissioned_expert(inst, OTHER_EXPERT, family_name="佐藤", given_name="花子")
    completed(expert, JUNE_10_AT_10, 130)
    assert agree(JUNE) == ([], (0, 0, 0, 0, 0, 0))
    assert "受理済みの報告書はありません。" in fees(bot_app, JUNE)

    first = send_report(bot_app, EXPERT, "130分")
    assert agree(JUNE) == ([], (0, 0, 0, 0, 0, 0)), "sent, not accepted: not paid"
    assert "（確認待ち1件は含みません）" in fees(bot_app, JUNE)
    decide(bot_app, first, "return")
    assert agree(JUNE) == ([], (0, 0, 0, 0, 0, 0))
    bot_app.text(EXPERT, "報告書")  # the returned report opens at its summary
    assert "支援実施報告書を送信しました" in tap(bot_app, EXPERT, "p=submit")[0]
    decide(bot_app, first, "accept")
    assert agree(JUNE) == ([(expert.id, 1, 10_560, 0, 0, 10_560)], (1, 1, 10_560, 0, 0, 10_560))
    assert "確認待ち" not in fees(bot_app, JUNE)

    # A second report of the same expert and month adds up in the same row.
    completed(expert, JUNE_10_AT_10 + timedelta(days=2), 60)
    second = send_report(bot_app, EXPERT, "60分", "1200円", "JR新宿駅〜東京駅 往復")
    assert agree(JUNE)[1][1] == 1 and "（確認待ち1件は含みません）" in fees(bot_app, JUNE)
    decide(bot_app, second, "accept")
    assert agree(JUNE) == ([(expert.id, 2, 15_840, 0, 1_200, 17_040)], (1, 2, 15_840, 0, 1_200, 17_040))

    # Another expert: a row of their own, the month's experts and totals grow.
    completed(other, JUNE_10_AT_10 + timedelta(days=5), 90)
    decide(bot_app, send_report(bot_app, OTHER_EXPERT, "90分"), "accept")
    rows, total = agree(JUNE)
    assert [r[:2] for r in rows] == [(expert.id, 2), (other.id, 1)] and total[:2] == (2, 3)
    text = fees(bot_app, JUNE)
    assert f"申請No.{other.id} 佐藤　花子：1件 謝金7,920円" in text and "合計：3件 謝金23,760円" in text

    # 1 July in Tokyo (30 June in UTC): July's sums; June's stay as they were.
    completed(expert, JULY_1_AT_0030, 60)
    decide(bot_app, send_report(bot_app, EXPERT, "60分"), "accept")
    assert agree(JULY) == ([(expert.id, 1, 5_280, 0, 0, 5_280)], (1, 1, 5_280, 0, 0, 5_280))
    assert agree(JUNE) == (rows, total)
    fees(bot_app, JULY)

    # What the machine kept is what the rule fills from scratch.
    before = kept(JUNE), kept(JULY)
    refill_fee_totals()
    assert (kept(JUNE), kept(JULY)) == before


def test_many_experts_page_as_before_with_the_months_totals_on_every_page(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "集計支援機関", REVIEWER)
    experts = [commissioned_expert(inst, user=f"U{n:031x}f", family_name="鈴木", given_name=f"三郎{n}")
               for n in range(43)]
    for n, e in enumerate(experts):  # the past written directly: 1–3 reports in June, some not accepted yet
        for k in range(1 + n % 3):
            d = dispatch_for(e, REVIEWER, when=JUNE_10_AT_10 + timedelta(days=k), status="completed")
            gross = 5_280 * (1 + (n + k) % 4)
            Report.create(dispatch=d, status="submitted" if k == 1 and n % 5 == 0 else "accepted", fee_month=JUNE,
                          minutes=60,
                          gross_yen=gross, withholding_yen=gross // 10, travel_yen=100 * (n % 5),
                          net_yen=gross - gross // 10 + 100 * (n % 5))
        if n % 4 == 0:
            d = dispatch_for(e, REVIEWER, when=JULY_1_AT_0030, status="completed")
            Report.create(dispatch=d, status="accepted", fee_month=JULY, minutes=60, gross_yen=5_280,
                          withholding_yen=0, travel_yen=0, net_yen=5_280)
    assert kept(JUNE) == ([], (0, 0, 0, 0, 0, 0)), "written directly: nothing kept yet"

    for e in experts:  # what the report machine does after each move, one expert's month at a time
        refresh_fee_totals(JUNE, e.id)
        refresh_fee_totals(JULY, e.id)
    rows, total = agree(JUNE)
    agree(JULY)
    before = kept(JUNE), kept(JULY)
    refill_fee_totals()  # the migration's fill gives the same rows
    assert (kept(JUNE), kept(JULY)) == before

    paid = total[0]
    assert paid == len(rows) == 43
    pages = [fees(bot_app, JUNE, number) for number in (1, 2, 3)]
    assert all(f"合計：{total[1]:,}件" in p and "（確認待ち" in p for p in pages), "the month's totals on every page"
    assert f"専門家{paid}名のうち1〜20人目" in pages[0] and f"専門家{paid}名のうち21〜40人目" in pages[1]
    assert f"専門家{paid}名のうち41〜{paid}人目" in pages[2] and pages[2].count("申請No.") == paid - 40
    assert bot_app.last_quick_reply(SEC) == ["前の20件"]
    assert fees(bot_app, JUNE, 9) == pages[2], "past the last page: the last page, as before"
    fees(bot_app, JUNE, 2)
    assert bot_app.last_quick_reply(SEC) == ["次の20件", "前の20件"]
    assert fees(bot_app, JULY).count("申請No.") == 11


def test_no_move_leaves_accepted():
    """The hook recomputes the report's month as it is after the move: a move that left ``accepted``
    (or changed an accepted report's month) would have to recompute the month it left too."""
    sources = [s for t in REPORT_TRANSITIONS for s in ([t["source"]] if isinstance(t["source"], str) else t["source"])]
    assert fee_totals.PAYABLE not in sources


def _submitted(expert: Expert, when: datetime) -> Report:
    d = dispatch_for(expert, REVIEWER, when=when, status="completed", name=f"株式会社同時{expert.id}")
    return Report.create(dispatch=d, status="submitted", fee_month=JUNE, minutes=60, gross_yen=5_280,
                         withholding_yen=0, travel_yen=0, net_yen=5_280, submitted_at=utcnow(), draft={})


def test_two_reviewers_accepting_reports_of_one_month_at_once_both_count(database):
    """The second waits for the month's row and sums what the first committed (without the lock,
    on PostgreSQL it summed the month before the first committed and lost it)."""
    inst = repo.create_institution("同時商工会", "よろず")
    reports = [_submitted(commissioned_expert(inst, user), JUNE_10_AT_10) for user in (EXPERT, OTHER_EXPERT)]
    earlier = _submitted(commissioned_expert(inst, "U" + "e3" + "0" * 30), JUNE_10_AT_10)
    REPORT.move(earlier, "accept", actor=REVIEWER, changes={"accepted_at": utcnow(), "accepted_by": REVIEWER})
    assert agree(JUNE)[1][:2] == (1, 1), "the month has its row already (nothing new to insert)"
    first_moved, second_started = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def accept(report: Report, first: bool) -> None:
        try:
            with db_proxy.atomic():
                if not first:
                    first_moved.wait(5)
                    second_started.set()
                REPORT.move(report, "accept", actor=REVIEWER, changes={"accepted_at": utcnow(), "accepted_by": REVIEWER})
                if first:
                    first_moved.set()
                    second_started.wait(5)
                    time.sleep(0.3)  # the second is now in its move, waiting for the month
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db_proxy.close()

    threads = [threading.Thread(target=accept, args=(r, i == 0)) for i, r in enumerate(reports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert agree(JUNE)[1] == (3, 3, 15_840, 0, 0, 15_840)


def test_migration_v12_fills_the_sums_from_the_reports(database):
    inst = repo.create_institution("移行商工会", "よろず")
    a, b = commissioned_expert(inst, EXPERT), commissioned_expert(inst, OTHER_EXPERT)
    cases = [(a, "accepted", JUNE, 10_560), (a, "accepted", JUNE, 5_280), (a, "submitted", JUNE, 7_920),
             (a, "returned", JUNE, 7_920), (a, "draft", None, None), (a, "accepted", JULY, 2_640),
             (b, "accepted", JUNE, 31_680), (b, "submitted", JULY, 5_280)]
    for n, (expert, status, month, gross) in enumerate(cases):
        d = dispatch_for(expert, REVIEWER, when=JUNE_10_AT_10 + timedelta(days=n), status="completed")
        Report.create(dispatch=d, status=status, fee_month=month, gross_yen=gross, withholding_yen=0 if gross else None,
                      travel_yen=0 if gross else None, net_yen=gross, draft={})
    assert fee_totals.PAYABLE == V12_PAID, "the migration fills by the rule the bot keeps"

    # As a v11 database has it: no sums at all.
    db = db_proxy.obj
    db.drop_tables([FeeTotal, FeeMonth])
    SchemaVersion.delete().where(SchemaVersion.version >= 12).execute()

    assert apply_migrations() == (11, LATEST)
    assert agree(JUNE) == ([(a.id, 2, 15_840, 0, 0, 15_840), (b.id, 1, 31_680, 0, 0, 31_680)],
                           (2, 3, 47_520, 0, 0, 47_520))
    assert agree(JULY) == ([(a.id, 1, 2_640, 0, 0, 2_640)], (1, 1, 2_640, 0, 0, 2_640))

    # Idempotent: run again (over filled rows, or rows gone wrong), the same rows.
    FeeTotal.update(n=99).execute()
    _v12_fee_sums(db, SchemaMigrator.from_database(db))
    assert agree(JUNE)[1] == (2, 3, 47_520, 0, 0, 47_520) and agree(JULY)[1] == (1, 1, 2_640, 0, 0, 2_640)
