"""支援実施報告書: writing, the fee, review (受理 / 差し戻し), reminders and the secretariat's totals.

Every actor talks through signed webhooks and the fake LINE platform; only
the scenario's past (the dispatch and its check-in/out) is written directly.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

from rq.job import Job

from conversations.kit.context import Context
from conversations.reports import feature as reports
from domain import stats
from domain.fee_totals import refresh_fee_totals
from domain.statuses import refresh_report_due
from handlers import jobs
from storage.models import Attendance, AuditLog, Dispatch, Outbox, Report, utcnow
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    OTHER_REVIEWER,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    pin_business_time,
    say_at,
    secretariat,
    send_photo,
    state_of,
    tap,
    utc_naive,
)

JUNE_10_AT_10 = datetime(2026, 6, 10, 1, 0)  # 10:00 in Tokyo, stored as UTC
OTHER_EXPERT = "U" + "e2" + "0" * 30
ANSWERS = ["新商品の販路開拓について相談を受けた。", "顧客分析とEC販売の計画づくりを支援した。",
           "営業が社長一人に集中している。", "顧客管理表を社内で共有することを提案した。"]


def checked(d: Dispatch, start: datetime, minutes: int) -> None:
    """The dispatch's check-in and check-out, ``minutes`` apart (LINE timestamps), and the
    report's due time the check-out move writes (``Dispatch.report_due_at``)."""
    for kind, at in (("in", start), ("out", start + timedelta(minutes=minutes))):
        Attendance.create(dispatch=d, kind=kind, line_timestamp=at, received_at=at, latitude=BUSINESS_LAT,
                          longitude=BUSINESS_LNG + 0.001, distance_m=90.0, event_id=f"{kind}-{d.id}")
    refresh_report_due(Dispatch.id == d.id)


def setup(bot_app, *, when: datetime = JUNE_10_AT_10, minutes: int = 130):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "報告商工会", REVIEWER)
    expert = commissioned_expert(inst)
    d = dispatch_for(expert, REVIEWER, when=when, status="completed")
    checked(d, when, minutes)
    return inst, expert, d


def write(bot_app, minutes: str = "130分", travel: str = "なし", route: str | None = None) -> list[str]:
    """Answer every question from 相談内容 on; returns the summary's texts."""
    for answer in ANSWERS:
        texts = bot_app.text(EXPERT, answer)
        assert not any("エラー" in t for t in texts), texts
    bot_app.text(EXPERT, minutes)
    bot_app.text(EXPERT, travel)
    if route:
        bot_app.text(EXPERT, route)
    texts = bot_app.text(EXPERT, "なし")
    assert state_of(bot_app, EXPERT) == ("report", "confirm"), texts
    return texts


def flex_to(bot_app, user: str, contains: str) -> list[str]:
    """The JSON of the Flex messages delivered to ``user`` whose JSON contains ``contains``."""
    found = [json.dumps(m, ensure_ascii=False) for m in bot_app.line.messages_for(user) if m.get("type") == "flex"]
    return [j for j in found if contains in j]


def test_minutes_default_to_the_checks_and_the_reviewer_accepts(bot_app):
    _, _, d = setup(bot_app)
    texts = bot_app.text(EXPERT, "報告書")
    assert "支援実施報告書の入力を始めます" in texts[0] and f"派遣No.{d.id}" in texts[0]
    assert "【相談内容】" in texts[-1] and state_of(bot_app, EXPERT) == ("report", "consultation")
    assert "5文字以上" in bot_app.text(EXPERT, "販路")[0]
    for answer in ANSWERS:
        texts = bot_app.text(EXPERT, answer)
    assert "チェックインからチェックアウトまで：2時間10分（130分）" in texts[-1]
    assert "2時間10分（130分）" in bot_app.last_quick_reply(EXPERT)
    texts = bot_app.text(EXPERT, "131")
    assert "最大130分" in texts[0] and state_of(bot_app, EXPERT) == ("report", "minutes")
    assert "1分以上" in bot_app.text(EXPERT, "0")[0]
    assert "1分以上" in bot_app.text(EXPERT, "-5")[0]
    texts = bot_app.text(EXPERT, "130分")  # the quick reply's text
    assert "2時間10分（130分）で保存しました" in texts[0] and "【交通費】" in texts[-1]
    bot_app.text(EXPERT, "なし")
    texts = bot_app.text(EXPERT, "なし")  # no photos
    assert "支援実施報告書の確認" in texts
    assert any("謝金 10,560円・源泉徴収 なし・交通費 0円" in t and "支払額 10,560円（2026年6月分）" in t for t in texts)

    texts = tap(bot_app, EXPERT, "p=submit")
    assert "支援実施報告書を送信しました" in texts[0] and state_of(bot_app, EXPERT) == (None, None)
    report = Report.get()
    assert (report.status, report.minutes, report.gross_yen, report.withholding_yen, report.travel_yen,
            report.net_yen, report.fee_month) == ("submitted", 130, 10_560, 0, 0, 10_560, "2026-06")
    assert report.draft["consultation"] == ANSWERS[0] and "open" not in report.draft
    assert Dispatch.get_by_id(d.id).status == "completed"

    bot_app.drain()
    for user in (REVIEWER, SEC):
        assert "支援実施報告書が提出されました。" in bot_app.texts_since(user, 0)
        card = flex_to(bot_app, user, f"a=rep_accept&id={report.id}")
        assert card and "10,560円" in card[0] and f"a=rep_return&id={report.id}" in card[0] \
            and f"a=rep_detail&id={report.id}" in card[0]

    texts = tap(bot_app, REVIEWER, f"a=rep_detail&id={report.id}")
    assert ANSWERS[2] in texts[0] and "報告書No." in texts[1]
    texts = tap(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")
    assert "受理します" in texts[0] and "支払額 10,560円" in texts[0]
    texts = tap(bot_app, REVIEWER, "c=yes")
    assert "受理しました" in texts[0]
    report = Report.get()
    assert report.status == "accepted" and report.accepted_by == REVIEWER and report.accepted_at is not None
    assert "受理できません" in tap(bot_app, SEC, f"a=rep_accept&id={report.id}")[0]  # decided already
    bot_app.drain()
    told = bot_app.texts_since(EXPERT, 0)
    assert any("支援実施報告書が受理されました" in t and "支払額 10,560円（2026年6月分）" in t for t in told)
    assert any("支援機関で受理されました" in t for t in bot_app.texts_since(SEC, 0))
    assert AuditLog.select().where((AuditLog.action == "report.accept") & (AuditLog.actor == REVIEWER)).count() == 1


def test_checkout_opens_the_report_and_schedules_its_reminder(bot_app, monkeypatch):
    scheduled, _ = reminder_hooks(monkeypatch)
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "報告商工会", REVIEWER)
    noon = pin_business_time(bot_app)  # checked in 2 h 10 min before: the same day after midnight too
    d = dispatch_for(commissioned_expert(inst), REVIEWER, when=utc_naive(noon - timedelta(minutes=140)))
    now_ms = int(noon.timestamp() * 1000)
    for word, ts in (("チェックイン", now_ms - 130 * 60_000), ("チェックアウト", now_ms)):
        say_at(bot_app, EXPERT, ts - 5000, text=word)
        event = bot_app.event(EXPERT, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG + 0.001)
        event["timestamp"] = ts
        seen = bot_app._seq(EXPERT)
        assert bot_app.post([event]).status_code == 200
    texts = bot_app.texts_since(EXPERT, seen)
    assert "チェックアウトしました" in texts[0] and "支援実施報告書の入力を始めます" in texts[1]
    assert "【相談内容】" in texts[-1] and state_of(bot_app, EXPERT) == ("report", "consultation")
    report = Report.get()
    assert report.dispatch_id == d.id and report.status == "draft" and Dispatch.get_by_id(d.id).status == "completed"
    assert [args for _, _, args, _ in scheduled] == [(report.id, 1, bot_app.rt.program.report_reminder_days)]
    for answer in ANSWERS:
        texts = bot_app.text(EXPERT, answer)
    assert "2時間10分（130分）" in texts[-1]


def test_lowered_minutes_travel_and_photo_then_returned_fixed_and_resubmitted(bot_app):
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    bot_app.text(EXPERT, ANSWERS[0])
    # The rich menu in the middle of a report pauses it; 「報告書」 resumes at the same question.
    texts = bot_app.text(EXPERT, "チェックアウト")
    assert "一時停止" in texts[0] and "チェックアウト済み" in texts[-1]
    texts = bot_app.text(EXPERT, "報告書")
    assert "再開します" in texts[0] and "支援内容" in texts[-1] and state_of(bot_app, EXPERT) == ("report", "support")
    for answer in ANSWERS[1:]:
        bot_app.text(EXPERT, answer)
    assert "1時間（60分）で保存しました" in bot_app.text(EXPERT, "1:00")[0]
    texts = bot_app.text(EXPERT, "１，２００円")
    assert "1,200円で保存しました" in texts[0] and "経路" in texts[-1]
    bot_app.text(EXPERT, "JR新宿駅〜東京駅 往復")
    texts = send_photo(bot_app, EXPERT)
    assert "写真を1枚受け取っています" in texts[0] and state_of(bot_app, EXPERT) == ("report", "photos")
    texts = bot_app.text(EXPERT, "完了")
    assert any("謝金 5,280円" in t and "交通費 1,200円" in t and "支払額 6,480円" in t for t in texts)
    tap(bot_app, EXPERT, "p=submit")
    report = Report.get()
    assert (report.minutes, report.gross_yen, report.travel_yen, report.net_yen) == (60, 5_280, 1_200, 6_480)
    assert report.draft["travel_route"] == "JR新宿駅〜東京駅 往復" and len(report.draft["photos"]) == 1
    assert bot_app.rt.files.exists(report.draft["photos"][0])

    reason = "対面時間が短すぎます。\n実際の支援時間を確認してください。"
    texts = tap(bot_app, SEC, f"a=rep_return&id={report.id}")
    assert "理由を入力してください" in texts[0]
    texts = bot_app.text(SEC, reason)
    assert "差し戻します" in texts[0] and "よろしいですか" in texts[0]
    texts = tap(bot_app, SEC, "c=yes")
    assert "差し戻しました" in texts[0]
    report = Report.get()
    assert report.status == "returned" and report.reason == reason
    bot_app.drain()
    assert any(reason in t for t in bot_app.texts_since(EXPERT, 0)), "the reason reaches the expert verbatim"
    assert any("事務局で差し戻されました" in t for t in bot_app.texts_since(REVIEWER, 0))

    texts = bot_app.text(EXPERT, "報告書")
    assert "差し戻された支援実施報告書を修正します" in texts[0] and f"差し戻しの理由：{reason}" in texts
    assert state_of(bot_app, EXPERT) == ("report", "confirm")
    texts = tap(bot_app, EXPERT, "p=edit&s=minutes")
    assert "【対面時間】" in texts[-1]
    texts = bot_app.text(EXPERT, "90")
    assert state_of(bot_app, EXPERT) == ("report", "confirm") and any("謝金 7,920円" in t for t in texts)
    texts = bot_app.text(EXPERT, "送信")
    assert "支援実施報告書を送信しました" in texts[0]
    report = Report.get()
    assert (report.status, report.minutes, report.gross_yen, report.net_yen) == ("submitted", 90, 7_920, 9_120)
    bot_app.drain()
    assert any("再提出" in t and reason.splitlines()[0] in t for t in bot_app.texts_since(REVIEWER, 0))


def test_reviewer_of_another_institution_and_the_expert_cannot_decide(bot_app):
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    report = Report.get()
    institution_with_reviewer(bot_app, "別の商工会", OTHER_REVIEWER)
    for user, action in ((OTHER_REVIEWER, "rep_accept"), (OTHER_REVIEWER, "rep_return"),
                         (OTHER_REVIEWER, "rep_detail"), (EXPERT, "rep_accept")):
        assert tap(bot_app, user, f"a={action}&id={report.id}") == ["この報告書を操作する権限がありません。"]
    assert Report.get().status == "submitted"
    refused = AuditLog.select().where((AuditLog.action == "auth.refused") & (AuditLog.target == f"report:{report.id}"))
    assert refused.count() == 4
    assert bot_app.text(OTHER_REVIEWER, "報告書")[0] == "確認待ちの報告書はありません。"
    assert "確認待ちの報告書：1件" in bot_app.text(REVIEWER, "報告書")[0]


def test_several_checked_out_dispatches_are_chosen_by_number(bot_app):
    _, expert, first = setup(bot_app)
    second = dispatch_for(expert, REVIEWER, when=JUNE_10_AT_10 + timedelta(days=1), status="completed",
                          name="有限会社サンプル商店")
    checked(second, JUNE_10_AT_10 + timedelta(days=1), 45)
    texts = bot_app.text(EXPERT, "報告書")
    assert f"1. 派遣No.{first.id}" in texts[0] and f"2. 派遣No.{second.id}" in texts[0]
    assert state_of(bot_app, EXPERT) == ("report", "dispatch") and "2. 有限会社サンプル商店" in bot_app.last_quick_reply(EXPERT)
    assert "番号" in bot_app.text(EXPERT, "3")[0]
    texts = bot_app.text(EXPERT, "2")
    assert "有限会社サンプル商店" in texts[0] and "【相談内容】" in texts[-1]
    assert Report.get().dispatch_id == second.id
    for answer in ANSWERS:
        texts = bot_app.text(EXPERT, answer)
    assert "45分" in texts[-1] and "最大45分" in bot_app.text(EXPERT, "1時間")[0]


def _report(expert, reviewer: str, status: str, month: str, gross: int, travel: int = 0, day: int = 10) -> Report:
    when = datetime(int(month[:4]), int(month[5:]), day, 1, 0)
    d = dispatch_for(expert, reviewer, when=when, status="completed")
    report = Report.create(dispatch=d, status=status, minutes=60, gross_yen=gross, withholding_yen=0,
                           travel_yen=travel, net_yen=gross + travel, fee_month=month, submitted_at=utcnow(),
                           accepted_at=utcnow() if status == "accepted" else None)
    refresh_fee_totals(month, expert.id)  # the sums /fees reads, as the report machine keeps them
    return report


def test_fees_total_accepted_reports_of_the_month_only(bot_app):
    inst, expert, _ = setup(bot_app)
    other = commissioned_expert(inst, OTHER_EXPERT, family_name="佐藤", given_name="花子")
    _report(expert, REVIEWER, "accepted", "2026-06", 10_560, 1_200)
    _report(expert, REVIEWER, "accepted", "2026-06", 5_280, day=12)
    _report(expert, REVIEWER, "submitted", "2026-06", 31_680, day=15)  # not yet payable
    _report(expert, REVIEWER, "accepted", "2026-07", 7_920)  # another month
    _report(other, REVIEWER, "accepted", "2026-06", 2_640, 500)

    text = bot_app.text(SEC, "/fees 2026-06")[0]
    assert f"申請No.{expert.id} 山田　太郎：2件 謝金15,840円 源泉0円 交通費1,200円 支払額17,040円" in text
    assert f"申請No.{other.id} 佐藤　花子：1件 謝金2,640円 源泉0円 交通費500円 支払額3,140円" in text
    assert "合計：3件 謝金18,480円 源泉0円 交通費1,700円 支払額20,180円" in text
    assert "確認待ち1件は含みません" in text
    assert "合計：1件 謝金7,920円" in bot_app.text(SEC, "/fees ２０２６－０７")[0]
    assert "使い方" in bot_app.text(SEC, "/fees 2026-13")[0]  # /fees alone: this month (tests/test_explain.py)
    assert bot_app.text(REVIEWER, "/fees 2026-06") == ["このコマンドは事務局のみ利用できます。"]

    listing = bot_app.text(SEC, "/reports")[0]
    assert "報告書（確認待ち）：1件" in listing and "31,680円" in listing and f"申請No.{expert.id}" in listing
    assert "報告書（受理済み）：4件" in bot_app.text(SEC, "/reports accepted")[0]
    assert "使い方" in bot_app.text(SEC, "/reports nonsense")[0]


def reminder_hooks(monkeypatch) -> tuple[list[tuple], list[str]]:
    """Record the reminder jobs a step asks the webhook to schedule / cancel after commit."""
    scheduled: list[tuple] = []
    cancelled: list[str] = []
    monkeypatch.setattr(Context, "schedule", lambda self, delay, func, *args, job_id:  # reminders only (not menu relinks)
                        scheduled.append((delay, func, args, job_id)) if func == reports.REMIND_JOB else None,
                        raising=False)
    monkeypatch.setattr(Context, "unschedule", lambda self, job_id: cancelled.append(job_id), raising=False)
    return scheduled, cancelled


def test_reminder_is_scheduled_at_checkout_and_not_sent_after_submission(bot_app, monkeypatch):
    scheduled, cancelled = reminder_hooks(monkeypatch)
    start = utcnow() - timedelta(minutes=190)  # checked in 3 h 10 min ago, out an hour ago
    setup(bot_app, when=start)
    bot_app.text(EXPERT, "報告書")
    report = Report.get()
    [(delay, func, args, job_id)] = scheduled
    days = bot_app.rt.program.report_reminder_days
    due = start + timedelta(minutes=130, days=days)
    assert func == "report.remind" and args == (report.id, 1, days)
    assert abs((utcnow() + delay) - due) < timedelta(minutes=1), "N days after check-out"
    assert report.draft["reminder_job_id"] == job_id

    # Still a draft when the job runs: the expert is reminded.
    assert reports.remind(report.id, 1, days).outcome == "reminded"
    pushed = Outbox.select().where((Outbox.reason == "report_reminder") & (Outbox.to == EXPERT))
    assert pushed.count() == 1 and "まだ提出されていません" in json.dumps(pushed[0].messages, ensure_ascii=False)
    assert reports.remind(report.id, 1, days).outcome == "already_sent"

    texts = bot_app.text(EXPERT, "報告書")  # while writing it: the question again, nothing scheduled twice
    assert "「支援実施報告書」の途中です" in texts[0] and "相談内容" in texts[-1] and len(scheduled) == 1
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    assert Report.get().status == "submitted"
    assert cancelled == [job_id], "submission cancels the pending reminder"
    assert reports.remind(report.id, 2, days).outcome == "not_needed"
    assert pushed.count() == 1, "a submitted report gets no reminder"


def test_reminder_job_runs_in_the_worker_repeats_once_and_submission_cancels_it(bot_app, monkeypatch):
    queue = bot_app.rt.queue("outbox", for_worker=True)
    monkeypatch.setattr(Context, "schedule", lambda self, delay, func, *args, job_id:  # reminders only (not menu relinks)
                        queue.enqueue_in(delay, jobs.run, func, *args, job_id=job_id)
                        if func == reports.REMIND_JOB else None, raising=False)
    monkeypatch.setattr(Context, "unschedule", lambda self, job_id:
                        Job.fetch(job_id, connection=queue.connection).cancel(), raising=False)
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, report_reminder_days=0)
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    report = Report.get()

    def run_due_jobs() -> list[str]:
        """What ``worker --with-scheduler`` does: move due jobs to the queue, then work it."""
        registry = queue.scheduled_job_registry
        due = registry.get_jobs_to_schedule(int(datetime.now().timestamp()) + 1)
        for job_id in due:
            queue.enqueue_job(Job.fetch(job_id, connection=queue.connection))
            registry.remove(job_id)
        bot_app.drain()
        return due

    seen = bot_app._seq(EXPERT)
    assert run_due_jobs() == [reports.reminder_job_id(report.id, 1)]
    assert any("まだ提出されていません" in t for t in bot_app.texts_since(EXPERT, seen))
    draft = Report.get().draft
    assert draft["reminders_sent"] == 1 and draft["reminder_job_id"] == reports.reminder_job_id(report.id, 2)
    assert queue.scheduled_job_registry.get_job_ids() == [reports.reminder_job_id(report.id, 2)]

    seen = bot_app._seq(EXPERT)
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    assert queue.scheduled_job_registry.get_job_ids() == [], "submission cancels the next reminder"
    assert run_due_jobs() == []
    assert not any("まだ提出されていません" in t for t in bot_app.texts_since(EXPERT, seen))


def test_the_second_reminder_is_the_last(bot_app, monkeypatch):
    queue = bot_app.rt.queue("outbox", for_worker=True)
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    report = Report.get()
    queue.enqueue_in(timedelta(0), jobs.run, reports.REMIND_JOB, report.id, 1, 0,  # as the webhook does
                     job_id=reports.reminder_job_id(report.id, 1))
    for n in (1, 2):
        due = queue.scheduled_job_registry.get_jobs_to_schedule(int(datetime.now().timestamp()) + 1)
        assert due == [reports.reminder_job_id(report.id, n)]
        queue.enqueue_job(Job.fetch(due[0], connection=queue.connection))
        queue.scheduled_job_registry.remove(due[0])
        bot_app.drain()
    assert queue.scheduled_job_registry.get_job_ids() == [], "two reminders at most"
    assert Report.get().draft["reminders_sent"] == 2 and "reminder_job_id" not in Report.get().draft
    assert len([t for t in bot_app.texts_since(EXPERT, 0) if "まだ提出されていません" in t]) == 2


def test_a_check_out_in_the_check_ins_minute_still_lets_the_report_be_sent(bot_app):
    """0 minutes between the checks (a check-out by mistake, a demo): the report
    is still owed — what was discussed, travel — with no fee for time."""
    setup(bot_app, minutes=0)
    bot_app.text(EXPERT, "報告書")
    for answer in ANSWERS:
        texts = bot_app.text(EXPERT, answer)
    assert "チェックインからチェックアウトまで：0分" in texts[-1] and "0分" in bot_app.last_quick_reply(EXPERT)
    assert "最大0分" in bot_app.text(EXPERT, "30")[0]
    texts = bot_app.text(EXPERT, "0分")
    assert "0分で保存しました" in texts[0] and "【交通費】" in texts[-1]
    bot_app.text(EXPERT, "800")
    bot_app.text(EXPERT, "○○駅〜△△駅 往復")
    texts = bot_app.text(EXPERT, "なし")
    assert state_of(bot_app, EXPERT) == ("report", "confirm") and any("謝金 0円" in t for t in texts), texts
    texts = tap(bot_app, EXPERT, "p=submit")
    assert "支援実施報告書を送信しました" in texts[0]
    report = Report.get()
    assert (report.status, report.minutes, report.gross_yen, report.travel_yen, report.net_yen) == (
        "submitted", 0, 0, 800, 800)


def test_zero_minutes_is_refused_when_the_checks_are_apart(bot_app):
    setup(bot_app, minutes=45)
    bot_app.text(EXPERT, "報告書")
    for answer in ANSWERS:
        bot_app.text(EXPERT, answer)
    assert "1分以上" in bot_app.text(EXPERT, "0")[0] and state_of(bot_app, EXPERT) == ("report", "minutes")


def test_a_returned_report_not_sent_again_is_reminded_and_resubmitting_cancels_it(bot_app, monkeypatch):
    scheduled, cancelled = reminder_hooks(monkeypatch)
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    report = Report.get()
    assert reports.remind(report.id, 1, 3).outcome == "not_needed", "submitted: nothing owed"
    scheduled.clear()
    tap(bot_app, REVIEWER, f"a=rep_return&id={report.id}")
    bot_app.text(REVIEWER, "支援内容をもう少し具体的に書いてください。")
    tap(bot_app, REVIEWER, "c=yes")
    days = bot_app.rt.program.report_reminder_days
    [(delay, func, args, job_id)] = scheduled
    assert (delay, args) == (timedelta(days=days), (report.id, 1, days)), "N days after the return"
    assert Report.get_by_id(report.id).draft["reminder_job_id"] == job_id

    assert reports.remind(report.id, 1, days).outcome == "reminded"
    pushed = Outbox.select().where((Outbox.reason == "report_reminder") & (Outbox.to == EXPERT))
    assert "差し戻された支援実施報告書がまだ再提出されていません" in json.dumps(pushed[0].messages, ensure_ascii=False)

    bot_app.text(EXPERT, "報告書")  # the returned report opens at its summary
    tap(bot_app, EXPERT, "p=submit")
    assert Report.get_by_id(report.id).status == "submitted" and cancelled[-1] == job_id
    assert reports.remind(report.id, 2, days).outcome == "not_needed"


def test_stats_count_dispatches_and_reports_late_for_the_secretariat_and_ops(bot_app):
    """SPEC ops: experts per status, dispatches per status, reports late (same rule as the reminders)."""
    import subprocess
    import sys

    days = bot_app.rt.program.report_reminder_days
    _, expert, late = setup(bot_app, when=utcnow() - timedelta(days=days + 1))  # checked out N+1 days ago, no report
    on_time = dispatch_for(expert, REVIEWER, when=utcnow() - timedelta(hours=3), status="completed")
    checked(on_time, utcnow() - timedelta(hours=3), 60)  # within N days: not late yet
    dispatch_for(expert, REVIEWER, status="requested")
    sent = dispatch_for(expert, REVIEWER, when=utcnow() - timedelta(days=days + 2), status="completed")
    checked(sent, utcnow() - timedelta(days=days + 2), 60)
    Report.create(dispatch=sent, status="submitted")
    refresh_report_due(Dispatch.id == sent.id)  # the past written directly, as the report machine keeps it
    assert stats.late_reports(bot_app.rt.program) == stats.late_reports_by_scan(bot_app.rt.program) == 1

    text = bot_app.text(SEC, "/stats")[0]
    assert "委嘱済み：1件" in text and "完了：3件" in text and "受諾待ち：1件" in text
    assert "提出が遅れている報告書：1件" in text, text

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": bot_app.config.data_dir, "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": ",".join(bot_app.config.data_encryption_keys),
           "SIGNING_KEY": "g",
           "DATABASE_URL": bot_app.config.database_url}
    out = subprocess.run([sys.executable, "bot.py", "stats"], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "提出が遅れている報告書：1件" in out.stdout and "完了：3件" in out.stdout


def test_the_report_card_and_detail_show_what_was_flagged_at_the_checks(bot_app):
    """SPEC: the secretariat's view flags suspicious patterns — also where the report is accepted."""
    from storage.models import ExceptionReport

    _, _, d = setup(bot_app)
    check_in = Attendance.get((Attendance.dispatch == d) & (Attendance.kind == "in"))
    check_in.flags, check_in.flagged = ["pin_on_business_point"], True
    check_in.save()
    ExceptionReport.create(dispatch=d, kind="out", reason="事業所が移転していたため", distances=[420, 415, 430])
    bot_app.text(EXPERT, "報告書")
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    bot_app.drain()
    report = Report.get()
    card = flex_to(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")[0]
    assert "【要確認】" in card and "チェックイン：位置が事業所の登録地点と完全に一致" in card
    assert "チェックアウトの例外：事業所が移転していたため" in card
    texts = tap(bot_app, REVIEWER, f"a=rep_detail&id={report.id}")
    assert any("【要確認】チェックイン・アウト" in t and "事業所が移転していたため" in t for t in texts)


def test_a_report_without_flags_shows_no_warning(bot_app):
    setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    write(bot_app)
    tap(bot_app, EXPERT, "p=submit")
    bot_app.drain()
    assert not flex_to(bot_app, REVIEWER, "要確認")


def test_a_day_cap_counts_the_experts_other_report_that_day(bot_app):
    """cap_scope = "day": two dispatches on one day share the 31,680-yen cap."""
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, cap_scope="day")
    _, expert, morning = setup(bot_app, when=JUNE_10_AT_10, minutes=300)  # 10 units: 26,400 yen
    bot_app.text(EXPERT, "報告書")
    write(bot_app, minutes="300分")
    tap(bot_app, EXPERT, "p=submit")
    assert Report.get(Report.dispatch == morning).gross_yen == 26_400
    afternoon = dispatch_for(expert, REVIEWER, when=JUNE_10_AT_10 + timedelta(hours=6), status="completed")
    checked(afternoon, JUNE_10_AT_10 + timedelta(hours=6), 120)  # 4 units: 10,560 yen uncapped
    bot_app.text(EXPERT, "報告書")
    texts = write(bot_app, minutes="120分")
    assert any("謝金 5,280円" in t for t in texts), texts  # 31,680 − 26,400 left for the day
    tap(bot_app, EXPERT, "p=submit")
    assert Report.get(Report.dispatch == afternoon).gross_yen == 5_280
