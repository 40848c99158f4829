"""Personal data kept only as long as needed (``domain.retention``, ``python bot.py purge``, the webhook's
replay guard): what goes, what stays, the notice before an unfinished registration is deleted, and a
signed body replayed after its event id was purged.

Time passes by handing the purge a later ``now`` (the webhook: the program's clock), or by back-dating
rows; the bot itself runs over HTTP against the fake LINE platform, as everywhere else.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from domain import clock, lifecycle, retention, withdrawal
from domain.withdrawal import ANONYMOUS, ERASED
from handlers import jobs, logs, outbox
from program import load_program
from simulator import events
from storage import repo
from storage.files import EncryptedFileStore
from storage.models import (
    AuditLog,
    Dispatch,
    ExceptionReport,
    Expert,
    LineUser,
    Outbox,
    PersonIndex,
    ProcessedEvent,
    Report,
    utcnow,
)
from tests.actors import (
    REVIEWER,
    dispatch_for,
    expert_of,
    institution_with_reviewer,
    jpeg,
    pushed_texts,
    secretariat,
    step_of,
    tap,
)
from tests.conftest import SECRET, TEST_CRYPTO
from tests.test_journey import EMAIL, EXPERT, register
from tests.test_personal_data import cli, commissioned_through_line, dispatch_and_report, env_for

PROGRAM = load_program()
USER = "U" + "7e" * 16
HELLO = [{"type": "text", "text": "審査結果のお知らせです。"}]
DAY = timedelta(days=1)


def purge_at(bot_app, now: datetime, dry_run: bool = False) -> retention.Purged:
    """The purge as the worker runs it, at ``now``; the notices it wrote are sent (logs left alone:
    the running bot's own files are not this test's business)."""
    done = retention.purge(bot_app.rt.program, bot_app.rt.files, None, now, dry_run)
    outbox.enqueue(done.outbox_ids)
    bot_app.drain()
    return done


def audits(action: str) -> list[AuditLog]:
    return list(AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id))


# --- webhook event ids and the outbox ------------------------------------------------------------------


def test_old_event_ids_and_closed_pushes_go_in_batches_and_pending_ones_stay(database, tmp_path):
    store = EncryptedFileStore(tmp_path / "files", TEST_CRYPTO)
    now = utcnow()
    for i in range(5):
        ProcessedEvent.create(webhook_event_id=f"old{i}", line_user_id=USER, processed_at=now - 32 * DAY)
    # Past processed_event_days but within the day's margin the webhook's cut-off leaves: kept.
    ProcessedEvent.create(webhook_event_id="margin", line_user_id=USER, processed_at=now - 30 * DAY - timedelta(hours=12))
    ProcessedEvent.create(webhook_event_id="new", line_user_id=USER, processed_at=now)
    old_sent = [Outbox.create(to=USER, messages=None, status=s, created_at=now - 91 * DAY, sent_at=now - 91 * DAY)
                for s in ("sent", "failed", "blocked")]
    old_pending = Outbox.create(to=USER, messages=HELLO, status="pending", created_at=now - 91 * DAY)
    leftover = Outbox.create(to=USER, messages=HELLO, status="sent", created_at=now - DAY)  # closed before clearing
    recent = Outbox.create(to=USER, messages=HELLO, status="pending", created_at=now)

    dry = retention.purge(PROGRAM, store, None, now, dry_run=True, batch=2)
    assert (dry.processed_events, dry.outbox_rows, dry.outbox_messages) == (5, 3, 1)
    assert ProcessedEvent.select().count() == 7 and Outbox.select().count() == 6, "a dry run changes nothing"
    assert Outbox.get_by_id(leftover.id).messages == HELLO and not audits("retention.purge")

    done = retention.purge(PROGRAM, store, None, now, batch=2)
    assert done.counts() == dry.counts()
    assert {r.webhook_event_id for r in ProcessedEvent.select()} == {"margin", "new"}
    assert {r.id for r in Outbox.select()} == {old_pending.id, leftover.id, recent.id}
    assert not any(Outbox.get_or_none(Outbox.id == r.id) for r in old_sent)
    assert Outbox.get_by_id(leftover.id).messages is None and Outbox.get_by_id(leftover.id).to == USER
    assert Outbox.get_by_id(old_pending.id).messages == HELLO, "a push not yet delivered is never touched"
    [audit] = audits("retention.purge")
    assert (audit.actor, audit.after) == ("system", str(done.total))
    assert "processed_events=5" in audit.reason and "outbox_rows=3" in audit.reason and USER not in audit.reason
    assert retention.purge(PROGRAM, store, None, now).total == 0, "a second run finds nothing"


# --- photos of closed applications -------------------------------------------------------------------------


def test_a_rejected_applications_photos_go_after_the_days_and_its_decision_stays(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "却下商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    expert = expert_of(EXPERT)
    photos = retention.photo_ids(expert.draft)
    assert len(photos) == 4 and all(bot_app.rt.files.exists(f) for f in photos)
    tap(bot_app, REVIEWER, f"a=inst_reject&id={expert.id}")
    bot_app.text(REVIEWER, "要件を満たしていません")
    tap(bot_app, REVIEWER, "c=yes")
    assert expert_of(EXPERT).status == "rejected"

    assert purge_at(bot_app, utcnow() + 89 * DAY).closed_photos == 0, "kept closed_application_photo_days"
    assert purge_at(bot_app, utcnow() + 91 * DAY, dry_run=True).closed_photos == 4
    assert all(bot_app.rt.files.exists(f) for f in photos)
    done = purge_at(bot_app, utcnow() + 91 * DAY)
    assert done.closed_photos == 4
    expert = expert_of(EXPERT)
    assert not any(bot_app.rt.files.exists(f) for f in photos)
    assert "photos" not in expert.draft and expert.draft["family_name"] == "鈴木"
    assert (expert.status, expert.status_reason) == ("rejected", "要件を満たしていません"), "the decision is the record"
    assert [a.target for a in audits("retention.photos_deleted")] == [f"expert:{expert.id}"]
    assert purge_at(bot_app, utcnow() + 92 * DAY).closed_photos == 0
    assert "登録不可" in bot_app.text(EXPERT, "状況")[0]


def test_a_photo_another_record_still_names_is_kept(database, tmp_path):
    """The store names a file by its content: the same bytes sent by two people are one file."""
    store = EncryptedFileStore(tmp_path / "files", TEST_CRYPTO)
    shared, own, reported, recent = (store.put(b"\xff\xd8\xff" + bytes([i]) * 64, "image/jpeg") for i in range(4))
    institution = repo.create_institution("共有商工会", "よろず")
    old = utcnow() - 100 * DAY

    def expert(user: str, status: str, **columns) -> Expert:
        return Expert.create(user=repo.ensure_user(user), status=status, institution=institution, updated_at=old,
                             **columns)

    commissioned = expert("U" + "1" * 32, "commissioned", draft={"photos": {"face": shared}},
                          profile={"photos": {"face": shared}})
    withdrawn = expert("U" + "2" * 32, "withdrawn", draft={"photos": {"face": shared, "id": own}},
                       profile={"photos": {"face": shared, "id": own}})
    rejected = expert("U" + "3" * 32, "rejected", draft={"photos": {"face": reported}})
    dispatch = dispatch_for(commissioned, REVIEWER)
    Report.create(dispatch=dispatch, draft={"photos": [reported]})
    fresh = expert("U" + "4" * 32, "rejected", draft={"photos": {"face": recent}})
    Expert.update(updated_at=utcnow() - 10 * DAY).where(Expert.id == fresh.id).execute()

    assert retention.purge(PROGRAM, store, None, utcnow(), dry_run=True).closed_photos == 1
    done = retention.purge(PROGRAM, store, None, utcnow())
    assert done.closed_photos == 1
    assert [store.exists(f) for f in (shared, own, reported, recent)] == [True, False, True, True]
    assert "photos" not in Expert.get_by_id(withdrawn.id).draft and "photos" not in Expert.get_by_id(withdrawn.id).profile
    assert "photos" not in Expert.get_by_id(rejected.id).draft, "its id goes; the file stays for the report"
    assert Expert.get_by_id(commissioned.id).profile == {"photos": {"face": shared}}
    assert Expert.get_by_id(fresh.id).draft == {"photos": {"face": recent}}


# --- abandoned registrations -----------------------------------------------------------------------------


def idle_for(user: str, days: int) -> None:
    """Nothing from ``user`` for ``days``: their answers and their last message back-dated."""
    then = utcnow() - days * DAY
    line_user = LineUser.get(LineUser.line_user_id == user)
    Expert.update(updated_at=then).where(Expert.user == line_user).execute()
    LineUser.update(updated_at=then).where(LineUser.id == line_user.id).execute()


def notices(bot_app, user: str) -> list[str]:
    return [t for t in pushed_texts(bot_app, user) if "専門家登録の入力について" in t]


def test_an_abandoned_draft_is_announced_once_then_deleted_with_its_photos(bot_app):
    institution = repo.create_institution("放置商工会", "よろず")
    register(bot_app, institution.code)  # every answer and four photos, never sent
    expert = expert_of(EXPERT)
    photos = retention.photo_ids(expert.draft)
    assert expert.status == "draft" and len(photos) == 4
    assert PersonIndex.select().where(PersonIndex.expert == expert.id).count() > 0

    idle_for(EXPERT, 165)
    assert purge_at(bot_app, utcnow()).draft_notices == 0, "told abandoned_draft_notice_days before, not earlier"
    idle_for(EXPERT, 167)
    assert purge_at(bot_app, utcnow(), dry_run=True).draft_notices == 1 and notices(bot_app, EXPERT) == []
    done = purge_at(bot_app, utcnow())
    assert (done.draft_notices, done.abandoned_drafts) == (1, 0)
    [notice] = notices(bot_app, EXPERT)
    assert "「登録」と送ってください" in notice and "削除します" in notice and "写真" in notice
    # Deleted 14 days after the notice (the 180 days of idleness end a day earlier), in Tokyo's calendar.
    deletion = clock.to_local(PROGRAM.timezone, utcnow() + 14 * DAY)
    assert f"{deletion.year}年{deletion.month}月{deletion.day}日" in notice, notice
    assert [a.target for a in audits("retention.draft_notice")] == [f"expert:{expert.id}"]
    assert purge_at(bot_app, utcnow() + DAY).draft_notices == 0 and len(notices(bot_app, EXPERT)) == 1, "told once"
    assert purge_at(bot_app, utcnow() + 12 * DAY).abandoned_drafts == 0, "not before the date it names"

    done = purge_at(bot_app, utcnow() + 14 * DAY)
    assert (done.abandoned_drafts, done.draft_photos, done.draft_notices) == (1, 4, 0)
    assert Expert.get_or_none(Expert.id == expert.id) is None
    assert PersonIndex.select().where(PersonIndex.expert == expert.id).count() == 0
    assert not any(bot_app.rt.files.exists(f) for f in photos)
    assert LineUser.get_or_none(LineUser.line_user_id == EXPERT) is not None, "the LINE account stays"
    assert [a.target for a in audits("retention.draft_deleted")] == [f"expert:{expert.id}"]
    # The conversation saved in Redis pointed into the form; 「登録」 now starts afresh.
    texts = bot_app.text(EXPERT, "登録")
    assert step_of(bot_app, EXPERT) == "terms" and any("同意しますか" in t for t in texts), texts
    assert expert_of(EXPERT).draft == {}


def test_a_message_after_the_notice_keeps_the_draft_and_a_later_idle_spell_is_told_again(bot_app):
    institution = repo.create_institution("再開商工会", "よろず")
    bot_app.say(EXPERT, "follow")
    bot_app.text(EXPERT, "同意する")
    bot_app.text(EXPERT, institution.code)
    bot_app.text(EXPERT, "鈴木 花子")
    idle_for(EXPERT, 170)
    assert purge_at(bot_app, utcnow()).draft_notices == 1

    texts = bot_app.text(EXPERT, "登録")  # as the notice says
    assert any("フリガナ" in t for t in texts), texts
    done = purge_at(bot_app, utcnow() + 14 * DAY)
    assert (done.abandoned_drafts, done.draft_notices) == (0, 0)
    assert expert_of(EXPERT).draft["family_name"] == "鈴木"
    # Idle for good this time: a new notice (the old one was before their message), then deletion.
    assert purge_at(bot_app, utcnow() + 167 * DAY).draft_notices == 1
    assert len(notices(bot_app, EXPERT)) == 2
    assert purge_at(bot_app, utcnow() + 181 * DAY).abandoned_drafts == 1


# --- what 退会 kept for the accounts -------------------------------------------------------------------


def test_what_withdrawal_kept_for_the_accounts_goes_after_records_years(bot_app):
    expert = commissioned_through_line(bot_app)
    report = dispatch_and_report(bot_app, expert)
    tap(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")
    assert "受理しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    # What a report may hold of the expert: the route they travelled, photos; an exception report's reason.
    photo = bot_app.rt.files.put(jpeg("olive"), "image/jpeg")
    Report.update(draft={**Report.get_by_id(report.id).draft, "travel_yen": 880, "travel_route": "自宅最寄りの荻窪駅〜東京駅",
                         "photos": [photo]}).where(Report.id == report.id).execute()
    ExceptionReport.create(dispatch=report.dispatch_id, kind="in", reason="自宅の近くで電波が悪かったため",
                           distances=[1200.0])
    bot_app.text(EXPERT, "退会")
    assert "7年間" in tap(bot_app, EXPERT, "c=yes")[0]
    kept = Expert.get_by_id(expert.id)
    assert (kept.family_name, kept.status) == ("鈴木", "withdrawn") and kept.profile["bank_code"]
    assert repo.experts_matching("name", "鈴木") == [expert.id], "kept, and found for the accounts"
    report = Report.get_by_id(report.id)
    amounts = (report.gross_yen, report.net_yen, report.minutes, report.fee_month, report.status)
    # Someone withdrawn with nothing to account for was anonymised at once: nothing more to erase.
    other = Expert.create(user=repo.ensure_user("U" + "5" * 32), status="draft", draft={"phone": "+819011112222"})
    lifecycle.change_status(other, "withdraw", actor="test", reason="本人の申し出")
    withdrawal.erase(other, None)
    other.save()

    years = PROGRAM.retention.records_years
    assert years == 7
    withdrawn = AuditLog.get((AuditLog.action == "status.change") & (AuditLog.target == f"expert:{expert.id}")
                             & (AuditLog.after == "withdrawn")).at
    early = purge_at(bot_app, withdrawal.years_before(withdrawn, -years) - DAY)
    assert (early.withdrawn_records, early.record_photos) == (0, 0), "kept the configured years"
    later = withdrawal.years_before(withdrawn, -years) + DAY
    dry = purge_at(bot_app, later, dry_run=True)
    assert (dry.withdrawn_records, dry.record_photos) == (1, 1)
    assert Expert.get_by_id(expert.id).profile == kept.profile and bot_app.rt.files.exists(photo), "a dry run changes nothing"
    assert "photos" in Report.get_by_id(report.id).draft

    done = purge_at(bot_app, later)
    assert (done.withdrawn_records, done.record_photos) == (1, 1)
    gone = Expert.get_by_id(expert.id)
    assert (gone.family_name, gone.given_name, gone.kana, gone.account_blind) == (ANONYMOUS, None, None, None)
    assert (gone.profile, gone.draft, gone.status) == (None, {}, "withdrawn")
    assert PersonIndex.select().where(PersonIndex.expert == expert.id).count() == 0, "no blind index left"
    assert repo.experts_matching("name", "鈴木") == [] and repo.experts_matching("name", "スズキ") == []
    assert repo.experts_matching("email", EMAIL) == []
    # The accounts' rows stay, with their totals and nothing of the person.
    report = Report.get_by_id(report.id)
    assert (report.gross_yen, report.net_yen, report.minutes, report.fee_month, report.status) == amounts
    assert "travel_route" not in report.draft and "photos" not in report.draft and report.draft["travel_yen"] == 880
    assert not bot_app.rt.files.exists(photo)
    assert ExceptionReport.get(ExceptionReport.dispatch == report.dispatch_id).reason == ERASED
    assert Dispatch.get_by_id(report.dispatch_id).status == "completed"
    stored = json.dumps([Report.get_by_id(report.id).draft, [e.reason for e in ExceptionReport.select()]],
                        ensure_ascii=False)
    assert "荻窪" not in stored and "自宅" not in stored
    # Counted and audited, never with the data; the other withdrawn expert was not touched.
    assert [a.target for a in audits("retention.records_erased")] == [f"expert:{expert.id}"]
    assert "withdrawn_records=1" in audits("retention.purge")[-1].reason
    assert "鈴木" not in json.dumps([a.reason for a in AuditLog.select()], ensure_ascii=False)
    assert Expert.get_by_id(other.id).family_name == ANONYMOUS
    assert purge_at(bot_app, later + DAY).withdrawn_records == 0, "a second run finds nothing"
    # The expert can still talk to the bot, and apply again.
    assert "退会済みです" in bot_app.text(EXPERT, "こんにちは")[0]


def test_a_withdrawn_expert_who_applied_again_keeps_their_records(bot_app):
    expert = commissioned_through_line(bot_app)
    dispatch_and_report(bot_app, expert)
    bot_app.text(EXPERT, "退会")
    tap(bot_app, EXPERT, "c=yes")
    bot_app.text(EXPERT, "登録")  # a new application on the same record: the account kept is in force again
    assert Expert.get_by_id(expert.id).status == "draft"
    done = purge_at(bot_app, utcnow() + 8 * 366 * DAY)
    assert done.withdrawn_records == 0
    assert Expert.get_by_id(expert.id).profile["bank_code"]


# --- the replay guard ------------------------------------------------------------------------------------


def signed(event: dict) -> tuple[bytes, str]:
    """A request as LINE signed it (what someone who captured it could send again)."""
    body = events.body([event])
    return body.encode("utf-8"), events.sign(body, SECRET)


def send_raw(bot_app, request: tuple[bytes, str]) -> requests.Response:
    body, signature = request
    return requests.post(bot_app.url + "/callback", data=body, timeout=10,
                         headers={"Content-Type": "application/json", "X-Line-Signature": signature})


def replay_lines(bot_app) -> list[dict]:
    return [e for e in map(json.loads, bot_app.log_lines()) if e.get("event") == "webhook.replay_refused"]


def test_a_signed_body_sent_again_after_its_id_was_purged_is_refused(bot_app):
    institution = repo.create_institution("再送商工会", "よろず")
    bot_app.say(EXPERT, "follow")
    bot_app.text(EXPERT, "同意する")
    bot_app.text(EXPERT, institution.code)
    event = bot_app.event(EXPERT, "text", text="鈴木 花子")
    captured = signed(event)
    assert send_raw(bot_app, captured).status_code == 200
    assert expert_of(EXPERT).draft["family_name"] == "鈴木"
    bot_app.text(EXPERT, "すずき はなこ")
    user = LineUser.get(LineUser.line_user_id == EXPERT)
    before = (user.session_rev, len(bot_app.line.deliveries_for(EXPERT)), ProcessedEvent.select().count())

    # 32 days on: the purge has removed the event's id, and Redis's quick dedupe key has long expired.
    later = datetime.now(PROGRAM.timezone) + 32 * DAY
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, clock=lambda: later)
    assert retention.purge(bot_app.rt.program, bot_app.rt.files, None, later).processed_events >= 4
    assert ProcessedEvent.get_or_none(ProcessedEvent.webhook_event_id == event["webhookEventId"]) is None
    bot_app.rt.redis.delete(bot_app.rt.keys.event(event["webhookEventId"]))

    assert send_raw(bot_app, captured).status_code == 200, "acknowledged like any skipped event"
    user = LineUser.get_by_id(user.id)
    assert (user.session_rev, len(bot_app.line.deliveries_for(EXPERT))) == before[:2], "nothing ran"
    assert ProcessedEvent.select().count() == 0, "not even its id is written back"
    [line] = replay_lines(bot_app)
    assert line["webhook_event_id"] == event["webhookEventId"] and line["age_days"] == 32
    assert "鈴木" not in json.dumps(line, ensure_ascii=False) and EXPERT not in json.dumps(line)


def test_an_event_older_than_its_id_is_kept_is_refused_at_once(bot_app):
    user = "U" + "0dd" * 10 + "00"
    stale = bot_app.event(user, "follow")
    stale["timestamp"] = int((time.time() - 31 * 86400) * 1000)
    assert bot_app.send(user, stale) == []
    assert LineUser.get_or_none(LineUser.line_user_id == user) is None
    assert replay_lines(bot_app)[-1]["age_days"] == 31
    recent = bot_app.event(user, "follow")
    recent["timestamp"] = int((time.time() - 29 * 86400) * 1000)  # within the window: an ordinary (late) event
    bot_app.send(user, recent)
    assert ProcessedEvent.get_or_none(ProcessedEvent.webhook_event_id == recent["webhookEventId"]) is not None


# --- log files ---------------------------------------------------------------------------------------------


def test_log_files_go_by_their_age_but_never_todays(database, tmp_path):
    store = EncryptedFileStore(tmp_path / "files", TEST_CRYPTO)
    now = utcnow()
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    old_day = (now - 40 * DAY).strftime("%Y%m%d")
    names = {"old": logs.file_name("web", 11, old_day), "legacy": "bot-web-12.jsonl",
             "recent": logs.file_name("web", 13, (now - DAY).strftime("%Y%m%d")),
             "today": logs.file_name("worker", 14, now.strftime("%Y%m%d")), "other": "notes.txt"}
    for name in names.values():
        (log_dir / name).write_text("{}\n")
    for key in ("old", "legacy", "today", "other"):  # today's, back-dated, still belongs to a live process
        os.utime(log_dir / names[key], (time.time() - 40 * 86400,) * 2)
    assert retention.purge(PROGRAM, store, log_dir, now, dry_run=True).log_files == 2
    assert retention.purge(PROGRAM, store, log_dir, now).log_files == 2
    assert sorted(p.name for p in log_dir.iterdir()) == sorted([names["recent"], names["today"], names["other"]])


def test_a_process_writes_one_file_per_utc_day_and_logs_reads_them_all(tmp_path, monkeypatch):
    sink = logs._JsonLinesFile(tmp_path, "web")
    now = [datetime(2026, 5, 1, 23, 59, 59, tzinfo=timezone.utc).timestamp()]
    monkeypatch.setattr(logs.time, "time", lambda: now[0])
    sink.write(json.dumps({"ts": "2026-05-01T23:59:59Z", "event": "first"}))
    now[0] += 2  # past midnight, UTC
    sink.write(json.dumps({"ts": "2026-05-02T00:00:01Z", "event": "second"}))
    monkeypatch.undo()
    files = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert files == [logs.file_name("web", os.getpid(), "20260501"), logs.file_name("web", os.getpid(), "20260502")]
    assert [e["event"] for e in logs.read_entries(tmp_path)] == ["first", "second"]


# --- the worker's daily run and the CLI --------------------------------------------------------------------


def test_the_daily_purge_runs_in_one_worker_once_a_day(bot_app):
    ProcessedEvent.create(webhook_event_id="ancient", line_user_id=USER, processed_at=utcnow() - 40 * DAY)
    first = jobs.purge_daily(bot_app.rt)
    assert first is not None and first.processed_events == 1
    assert jobs.purge_daily(bot_app.rt) is None, "another worker (or a later tick) finds today's key taken"
    ttl = bot_app.rt.worker_redis.ttl(bot_app.rt.keys.daily(jobs.PURGE_JOB))
    assert 22 * 3600 < ttl <= 23 * 3600
    [audit] = audits("retention.purge")
    assert audit.actor == "system"


def test_python_bot_py_purge_counts_with_dry_run_then_deletes(database, tmp_path):
    url = database
    if not url.startswith("sqlite"):
        return  # the subprocess reads DATABASE_URL; PostgreSQL runs the same code in the tests above
    ProcessedEvent.create(webhook_event_id="old", line_user_id=USER, processed_at=utcnow() - 40 * DAY)
    Outbox.create(to=USER, messages=None, status="sent", created_at=utcnow() - 100 * DAY)
    log_dir = Path(tmp_path, "log")
    log_dir.mkdir()
    (log_dir / "bot-web-1.jsonl").write_text("{}\n")
    os.utime(log_dir / "bot-web-1.jsonl", (time.time() - 40 * 86400,) * 2)
    env = env_for(tmp_path, url, [Fernet.generate_key().decode()])  # nothing sealed is read here
    dry = cli(env, "purge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "processed_events: 1" in dry.stdout and "log_files: 1" in dry.stdout
    assert ProcessedEvent.select().count() == 1 and (log_dir / "bot-web-1.jsonl").exists()
    done = cli(env, "purge")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "processed_events: 1" in done.stdout and "outbox_rows: 1" in done.stdout
    assert ProcessedEvent.select().count() == 0 and Outbox.select().count() == 0
    assert not (log_dir / "bot-web-1.jsonl").exists()
    [audit] = audits("retention.purge")
    assert audit.actor == "cli"
