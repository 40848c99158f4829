"""The expert's rights in LINE: 登録内容 shows everything held, 退会 erases it but what the accounts keep.

Everything goes through signed webhooks and the fake LINE platform (which
checks every reply and push against LINE's OpenAPI spec), as in
``tests/test_journey.py``; the expert is registered, reviewed, approved and
commissioned through LINE (``commissioned_through_line``).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
import requests

from conversations.reports import reminders
from domain import exports, lifecycle, retention
from domain.lifecycle import IllegalTransition, change_status
from domain.withdrawal import KEPT_FOR_RECORDS
from handlers import richmenu
from storage import repo
from storage.models import AuditLog, ChangeRequest, Dispatch, Expert, LineUser, PersonIndex, Report, utcnow
from tests.actors import REVIEWER, SEC, institution_with_reviewer, near, pushed_texts, secretariat, state_of, tap
from tests.helpers import TOKYO
from tests.test_journey import EMAIL, EXPERT, register
from tests.test_personal_data import commissioned_through_line, dispatch_and_report

PHONE = "09024681357"


def messages_since(bot_app, user: str, after: int) -> list[dict]:
    return [m for d in bot_app.line.deliveries_for(user, after=after) for m in d["messages"]]


def last_seq(bot_app, user: str) -> int:
    deliveries = bot_app.line.deliveries_for(user)
    return deliveries[-1]["seq"] if deliveries else 0


def request_dispatch(bot_app, expert: Expert) -> Dispatch:
    """The reviewer asks the expert for a dispatch tomorrow (the expert has not answered)."""
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社あしたの工房")
    bot_app.text(REVIEWER, "なし")
    point = near(0)
    bot_app.say(REVIEWER, "location", latitude=point[0], longitude=point[1], address="東京都港区芝公園4-2-8")
    bot_app.text(REVIEWER, expert.profile["expertise"][0])
    bot_app.text(REVIEWER, f"No.{expert.id}")
    when = (datetime.now(TOKYO) + timedelta(days=1)).replace(hour=10, minute=0)
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": when.strftime("%Y-%m-%dT%H:%M")})
    assert "依頼しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    bot_app.drain()
    return Dispatch.get(Dispatch.status == "requested")


def photo_ids(expert: Expert) -> list[str]:
    return sorted((expert.profile or {}).get("photos", {}).values())


def index_kinds(expert: Expert) -> set[str]:
    return {row.kind for row in PersonIndex.select().where(PersonIndex.expert == expert.id)}


# --- 登録内容 ------------------------------------------------------------------------------------


def test_disclosure_shows_the_answers_photos_history_and_consents(bot_app):
    expert = commissioned_through_line(bot_app)
    before = last_seq(bot_app, EXPERT)
    texts = bot_app.text(EXPERT, "登録内容")
    sent = messages_since(bot_app, EXPERT, before)
    assert 3 <= len(sent) <= 5, "one reply: LINE takes at most five messages"
    assert "保有している個人データを開示します" in texts[0] and f"申請No.{expert.id}（委嘱済み）" in texts[0]

    summary = json.dumps(sent[1], ensure_ascii=False)
    assert sent[1]["type"] == "flex" and "登録内容（保有個人データ）" in summary
    for shown in ("鈴木　花子", EMAIL, "090-2468-1357", "丸の内1-1-1", "中小企業診断士", "秘匿商工会"):
        assert shown in summary, shown
    assert "p=edit" not in summary and "p=submit" not in summary, "a disclosure, not a form"

    # The photos are buttons with short-lived signed links that open the photo (no codes to copy).
    photos = json.dumps(sent[2])
    links = re.findall(r'"uri": "([^"]+/files/[^"]+)"', photos)
    assert len(links) == 4
    local = bot_app.url + "/files/" + links[0].rsplit("/files/", 1)[1]
    response = requests.get(local, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"

    record = texts[-1]
    assert "【手続きの履歴】" in record
    for move in ("入力中（未送信） → 支援機関の審査待ち", "支援機関の審査待ち → 事務局の承認待ち",
                 "事務局の承認待ち → 登録済み（委嘱条件への同意待ち）", "委嘱条件に同意済み（就任承諾待ち） → 委嘱済み"):
        assert move in record, move
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2} 入力中", record), "each move has its date and time"
    assert "【同意の記録】" in record and "個人情報の取扱い（2026-04）：同意" in record
    assert "委嘱条件（第1版・2026年4月）：同意" in record and "就任承諾書：提出" in record
    assert AuditLog.select().where((AuditLog.action == "data.disclosed")
                                   & (AuditLog.target == f"expert:{expert.id}")).count() == 1

    # The other words, too; someone with no application is told what little is held.
    assert "保有している個人データを開示します" in bot_app.text(EXPERT, "個人情報")[0]
    assert "保有している個人データを開示します" in bot_app.text(EXPERT, "登録情報")[0]
    assert "専門家登録の情報はありません" in bot_app.text("U" + "9" * 32, "登録内容")[0]


def test_disclosure_before_approval_shows_the_application(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "開示商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    before = last_seq(bot_app, EXPERT)
    texts = bot_app.text(EXPERT, "登録内容")
    summary = json.dumps(messages_since(bot_app, EXPERT, before)[1], ensure_ascii=False)
    assert "支援機関の審査待ち" in texts[0] and EMAIL in summary
    assert "入力中（未送信） → 支援機関の審査待ち" in texts[-1]


def test_a_rights_request_typed_in_the_middle_of_the_form_is_never_taken_as_an_answer(bot_app):
    institution = repo.create_institution("途中商工会", "よろず")
    bot_app.say(EXPERT, "follow")
    for answer in ("同意する", institution.code, "鈴木 花子"):
        bot_app.text(EXPERT, answer)
    assert state_of(bot_app, EXPERT) == ("profile", "kana")
    texts = bot_app.text(EXPERT, "登録内容")
    shown = json.dumps(bot_app.line.deliveries_for(EXPERT)[-1]["messages"], ensure_ascii=False)
    assert "開示します" in texts[0] and "鈴木" in shown and Expert.get().draft.get("kana_family") is None
    texts = bot_app.text(EXPERT, "退会")
    assert any("削除" in t for t in texts), texts
    assert Expert.get().draft.get("kana_family") is None, "「退会」 is not a フリガナ"
    assert "取りやめました" in tap(bot_app, EXPERT, "c=no")[0]
    texts = bot_app.text(EXPERT, "登録")
    assert state_of(bot_app, EXPERT) == ("profile", "kana") and any("フリガナ" in t for t in texts), texts
    assert Expert.get().draft["family_name"] == "鈴木", "nothing given is lost"


# --- 退会, by the expert --------------------------------------------------------------------------


def test_withdrawal_without_records_erases_everything_and_cancels_pending_dispatches(bot_app):
    richmenu.sync(bot_app.rt.line, bot_app.rt.worker_redis)
    expert = commissioned_through_line(bot_app)
    bot_app.drain()
    assert bot_app.line.rich_menu_for(EXPERT)["name"] == richmenu.menu_name(richmenu.LAYOUTS["expert"])
    dispatch = request_dispatch(bot_app, expert)
    photos = photo_ids(expert)
    assert len(photos) == 4 and all(bot_app.rt.files.exists(p) for p in photos)
    assert index_kinds(expert) == {"name", "phone", "email"}

    # A change of e-mail waits for the reviewer.
    bot_app.text(EXPERT, "登録内容の変更")
    tap(bot_app, EXPERT, "p=edit&s=email")
    bot_app.text(EXPERT, "hanako.new@example.com")
    assert "変更申請を送信しました" in tap(bot_app, EXPERT, "p=submit")[0]
    change = ChangeRequest.get()

    # The confirmation says what goes and what stays, and いいえ changes nothing.
    texts = bot_app.text(EXPERT, "退会")
    assert state_of(bot_app, EXPERT) == ("withdrawal", "confirm")
    plan = texts[-1]
    assert "電話番号・メールアドレス・生年月日・住所" in plan and "提出した写真" in plan and "氏名・フリガナ・振込口座" in plan
    assert f"受諾待ち・受諾済みの派遣（派遣No.{dispatch.id}）は取り消し" in plan and "よろしいですか？" in plan
    assert "取りやめました" in bot_app.text(EXPERT, "いいえ")[0]
    assert Expert.get_by_id(expert.id).status == "commissioned"

    bot_app.text(EXPERT, "退会")
    assert "「はい」または「いいえ」でお答えください" in bot_app.text(EXPERT, "どちらでも")[0], "anything else: asked again"
    assert state_of(bot_app, EXPERT) == ("withdrawal", "confirm")
    texts = tap(bot_app, EXPERT, "c=yes")
    assert "退会の手続きが完了しました" in texts[0]
    assert "削除した情報：" in texts[0] and "氏名・フリガナ・振込口座" in texts[0].split("保管する情報")[0]
    assert f"取り消した派遣：派遣No.{dispatch.id}" in texts[0] and "「登録」と送って" in texts[0]

    expert = Expert.get_by_id(expert.id)
    assert expert.status == "withdrawn"
    assert (expert.draft, expert.profile) == ({}, None)
    assert (expert.family_name, expert.given_name, expert.kana, expert.account_blind) == ("退会者", None, None, None)
    assert not any(bot_app.rt.files.exists(p) for p in photos), "the photo files are deleted"
    assert "phone" not in index_kinds(expert) and "email" not in index_kinds(expert)
    assert repo.experts_matching("phone", PHONE) == [] and repo.experts_matching("email", EMAIL) == []
    assert repo.experts_matching("name", "鈴木") == []
    move = AuditLog.get((AuditLog.action == "status.change") & (AuditLog.after == "withdrawn"))
    assert (move.actor, move.before, move.target, move.reason) == (EXPERT, "commissioned", f"expert:{expert.id}",
                                                                   "本人の申し出（LINE）")
    assert AuditLog.get(AuditLog.action == "data.erased").after == "anonymised"
    # The change request is returned (approving it would bring the answers back); its values are gone.
    change = ChangeRequest.get_by_id(change.id)
    assert (change.status, change.reason) == ("returned", "専門家の退会")
    assert change.changed == [["メール", "（削除済み）", "（削除済み）"]]
    texts = tap(bot_app, REVIEWER, f"a=chg_approve&id={change.id}")  # the old card: answered at once
    assert f"変更申請No.{change.id} は差し戻し済みです" in texts[0] and "よろしいですか" not in texts[0]
    assert repo.experts_matching("email", "hanako.new@example.com") == []

    # The pending dispatch is cancelled through its machine, with a reason, and the reviewer told.
    dispatch = Dispatch.get_by_id(dispatch.id)
    assert (dispatch.status, dispatch.reason) == ("cancelled", "専門家の退会のため")
    assert AuditLog.select().where((AuditLog.action == "status.change") & (AuditLog.target == f"dispatch:{dispatch.id}")
                                   & (AuditLog.after == "cancelled")).count() == 1
    assert any(f"派遣No.{dispatch.id}" in t and "退会により取り消されました" in t for t in pushed_texts(bot_app, REVIEWER))
    assert bot_app.line.rich_menu_for(EXPERT)["name"] == richmenu.menu_name(richmenu.LAYOUTS["applicant"]), \
        "the default menu again"

    # Whatever they write now, they are told they have withdrawn and how to come back.
    for said in ("こんにちは", "チェックイン", "報告書", "退会", "状況"):
        texts = bot_app.text(EXPERT, said)
        assert "退会済みです" in texts[0] and "「登録」と送って" in texts[0], (said, texts)
    texts = bot_app.text(EXPERT, "登録内容")
    assert "退会済み" in texts[0] and "委嘱済み → 退会済み（理由：本人の申し出（LINE））" in texts[-1]

    # 登録 starts a new application: the form from the start, on the same record, audited.
    texts = bot_app.text(EXPERT, "登録")
    assert "新しい申請として" in texts[0] and "同意しますか" in texts[-1]
    assert state_of(bot_app, EXPERT) == ("profile", "terms")
    expert = Expert.get_by_id(expert.id)
    assert (expert.status, expert.commission_number, expert.conditions_version) == ("draft", None, None)
    assert AuditLog.select().where((AuditLog.action == "status.change") & (AuditLog.before == "withdrawn")
                                   & (AuditLog.after == "draft")).count() == 1


def test_withdrawal_with_records_keeps_what_pays_and_accounts_for_them(bot_app):
    expert = commissioned_through_line(bot_app)
    report = dispatch_and_report(bot_app, expert)
    tap(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")
    assert "受理しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    expert = Expert.get_by_id(expert.id)
    photos = photo_ids(expert)

    plan = bot_app.text(EXPERT, "退会")[-1]
    assert "会計のため、退会後も7年間、暗号化して保管します" in plan
    assert "謝金・全銀（振込）データ・完了した派遣の報告書" in plan
    texts = tap(bot_app, EXPERT, "c=yes")
    assert "7年間" in texts[0].split("保管する情報")[1]

    expert = Expert.get_by_id(expert.id)
    assert expert.status == "withdrawn" and expert.draft == {}
    assert set(expert.profile) <= set(KEPT_FOR_RECORDS)
    assert {"family_name", "kana_family", "bank_code", "branch_code", "account_number_enc", "holder_enc"} <= set(expert.profile)
    for gone in ("phone", "email", "birthdate", "address", "postal", "qualifications", "photos", "expertise"):
        assert gone not in expert.profile, gone
    assert (expert.family_name, expert.given_name) == ("鈴木", "花子") and expert.kana
    assert index_kinds(expert) == {"name"}, "found by name for the accounts; no phone or e-mail left"
    assert not any(bot_app.rt.files.exists(p) for p in photos)
    assert AuditLog.get(AuditLog.action == "data.erased").after == "records_kept"
    assert Report.get_by_id(report.id).status == "accepted"

    # The 全銀 file can still be made: the payee and account are what was kept.
    transfers = exports.transfers(report.fee_month, bot_app.rt.crypto)
    assert [(t.holder_kana, t.amount_yen) for t in transfers] == [("ｽｽﾞｷ ﾊﾅｺ", report.net_yen)]
    texts = bot_app.text(EXPERT, "こんにちは")
    assert "支払いに必要な氏名・振込口座のみ保管" in texts[0]

    # A report owed again would not be asked for any more: the reminder stops at 退会.
    Report.update(status="returned").where(Report.id == report.id).execute()
    assert reminders.remind(report.id).outcome == "withdrawn"


def test_a_former_expert_who_applies_again_and_abandons_it_keeps_the_accounting_records(bot_app):
    """The abandoned-draft purge deletes application rows; never one that past work is accounted by."""
    expert = commissioned_through_line(bot_app)
    report = dispatch_and_report(bot_app, expert)
    bot_app.text(EXPERT, "退会")
    tap(bot_app, EXPERT, "c=yes")
    bot_app.text(EXPERT, "登録")  # a new application on the same record…
    assert Expert.get_by_id(expert.id).status == "draft"
    long_ago = utcnow() - timedelta(days=400)  # …left untouched far past every retention period
    Expert.update(updated_at=long_ago).where(Expert.id == expert.id).execute()
    LineUser.update(updated_at=long_ago).where(LineUser.line_user_id == EXPERT).execute()
    done = retention.purge(bot_app.rt.program, bot_app.rt.files, None, utcnow() + timedelta(days=30))
    assert (done.draft_notices, done.abandoned_drafts) == (0, 0)
    assert Expert.get_or_none(Expert.id == expert.id) is not None
    assert Report.get_or_none(Report.id == report.id) is not None and Dispatch.select().count() == 1


# --- 退会, by the secretariat ---------------------------------------------------------------------


def test_secretariat_withdraws_on_request_received_outside_line(bot_app):
    expert = commissioned_through_line(bot_app)
    # The expert is changing their profile when the secretariat acts.
    bot_app.text(EXPERT, "登録内容の変更")
    assert state_of(bot_app, EXPERT) == ("profile", "confirm")

    assert "使い方：/withdraw" in bot_app.text(SEC, f"/withdraw {expert.id}")[0], "the reason is required"
    assert "事務局のみ" in bot_app.text(REVIEWER, f"/withdraw {expert.id} 郵送で申し出")[0]
    texts = bot_app.text(SEC, f"/withdraw {expert.id} 郵送で退会届を受領")
    assert f"申請No.{expert.id}（鈴木 花子さん・委嘱済み）を退会処理します" in texts[-1]  # alt text: spaces folded
    assert "理由：郵送で退会届を受領" in texts[-1] and "よろしいですか？" in texts[-1]
    assert "取りやめました" in tap(bot_app, SEC, "c=no")[0]
    assert Expert.get_by_id(expert.id).status == "commissioned"

    bot_app.text(SEC, f"/withdraw {expert.id} 郵送で退会届を受領")
    texts = tap(bot_app, SEC, "c=yes")
    assert f"申請No.{expert.id}（鈴木　花子さん）を退会処理しました。専門家に伝えました。" in texts[0]
    expert = Expert.get_by_id(expert.id)
    assert expert.status == "withdrawn" and expert.family_name == "退会者"
    move = AuditLog.get((AuditLog.action == "status.change") & (AuditLog.after == "withdrawn"))
    assert (move.actor, move.reason) == (SEC, "郵送で退会届を受領")
    told = pushed_texts(bot_app, EXPERT)
    assert any("事務局で退会の手続きを行いました" in t and "理由：郵送で退会届を受領" in t for t in told)

    # The form the expert had open is closed: 送信 no longer sends anything.
    texts = bot_app.text(EXPERT, "送信")
    assert "退会済みです" in texts[0] and state_of(bot_app, EXPERT) == (None, None)
    assert ChangeRequest.select().count() == 0 and Expert.get_by_id(expert.id).draft == {}

    assert f"申請No.{expert.id} は退会済みです" in bot_app.text(SEC, f"/withdraw {expert.id} 二重")[0]
    assert "退会済み：1件" in bot_app.text(SEC, "/stats")[0]
    assert "/withdraw" in bot_app.text(SEC, "/help")[0]

    shown = bot_app.text(SEC, f"/show {expert.id}")
    assert any("退会：" in t and "郵送で退会届を受領" in t for t in shown)
    assert not any("ブロック中" in t for t in shown)
    bot_app.say(EXPERT, "unfollow")
    assert LineUser.get(LineUser.line_user_id == EXPERT).following is False
    assert any("LINE：ブロック中" in t for t in bot_app.text(SEC, f"/show {expert.id}"))


def test_secretariat_withdrawal_of_a_blocked_expert_tells_no_one_in_line(bot_app):
    expert = commissioned_through_line(bot_app)
    bot_app.text(EXPERT, "登録内容の変更")  # a form left open
    bot_app.say(EXPERT, "unfollow")
    shown = bot_app.text(SEC, f"/show {expert.id}")
    assert any("LINE：ブロック中" in t for t in shown)
    before = last_seq(bot_app, EXPERT)
    bot_app.text(SEC, f"/withdraw {expert.id} 電話で申し出")
    texts = tap(bot_app, SEC, "c=yes")
    assert "ブロックしているため、LINEでは伝えていません" in texts[0]
    bot_app.drain()
    assert messages_since(bot_app, EXPERT, before) == []

    # Back again: no form reopens; they are told, and an institution code starts a new application.
    texts = bot_app.say(EXPERT, "follow")
    assert "おかえりなさい" in texts[0] and "退会済みです" in texts[0] and state_of(bot_app, EXPERT) == (None, None)
    institution = expert.institution
    texts = bot_app.text(EXPERT, institution.code)
    assert f"支援機関「{institution.name}」で受け付けます" in texts[0] and state_of(bot_app, EXPERT) == ("profile", "terms")
    assert Expert.get_by_id(expert.id).status == "draft"


# --- the lifecycle -------------------------------------------------------------------------------


@pytest.fixture
def fresh(database):
    user = LineUser.create(line_user_id="U" + "8" * 32)
    return Expert.create(user=user, status="draft", draft={})


@pytest.mark.parametrize("status", [s for s in lifecycle.STATUSES if s != "withdrawn"])
def test_withdrawal_is_allowed_from_every_status_but_withdrawn(fresh, status):
    fresh.status = status
    fresh.save()
    assert change_status(fresh, "withdraw", actor="test", reason="本人の申し出") == (status, "withdrawn")
    with pytest.raises(IllegalTransition):
        change_status(fresh, "withdraw", actor="test", reason="二度目")
    assert lifecycle.LABELS["withdrawn"] == "退会済み"


def test_only_a_withdrawn_expert_applies_again(fresh):
    with pytest.raises(IllegalTransition):
        change_status(fresh, "reapply", actor="test")
    change_status(fresh, "withdraw", actor="test", reason="本人の申し出")
    assert change_status(fresh, "reapply", actor="test") == ("withdrawn", "draft")
