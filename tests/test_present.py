"""Buttons that know the present, flows set aside, stickers and files (issue 12, part 2).

Every button of an old message is answered from the current state at once —
before any 「よろしいですか？」 — with where its thing stands and what can be
done now; a flow set aside is recalled when the user writes something
nobody claims; a sticker or a file is answered kindly with what the step
needs. All through signed webhooks and the fake LINE platform.
"""
from __future__ import annotations

import json
import re
from typing import Any

from domain.statuses import DISPATCH
from simulator import events
from simulator.contract import WEBHOOK_SPEC, schema_validator
from storage import repo
from storage.models import ChangeRequest, Dispatch, Expert
from tests.actors import (
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    state_of,
    submitted_application,
    tap,
)
from tests.test_journey import EXPERT as APPLICANT
from tests.test_journey import register
from tests.test_profile_steps import USER, walk_to

DAY = r"\d{4}年\d{1,2}月\d{1,2}日"


def setup(bot_app) -> tuple[Any, Expert]:
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "現在商工会", REVIEWER)
    return inst, submitted_application(inst)


def send(bot_app, user: str, build: Any, **fields: Any) -> list[str]:
    """The user sends a message built by ``simulator.events`` (sticker, file, video, audio)."""
    event = build(user, bot_app.line.issue_reply_token(user), timestamp=bot_app.line.now_ms(), **fields)
    return bot_app.send(user, event)


def last_messages(bot_app, user: str) -> list[dict[str, Any]]:
    return bot_app.line.deliveries_for(user)[-1]["messages"]


def session_retries(bot_app, user: str) -> dict[str, int]:
    return bot_app.rt.gate.read_session(user).retries


# --- the application's decision buttons ------------------------------------------------------


def test_a_decided_applications_buttons_answer_its_status_at_once(bot_app):
    inst, expert = setup(bot_app)
    tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    assert "承認しました" in tap(bot_app, REVIEWER, "c=yes")[0]

    # The reviewer's old card: 承認 again, 差し戻し, 却下 — the status, no confirmation, no reason asked.
    for op in ("inst_approve", "inst_return", "inst_reject"):
        texts = tap(bot_app, REVIEWER, f"a={op}&id={expert.id}")
        assert len(texts) == 1 and "よろしいですか" not in texts[0] and "理由" not in texts[0], texts
        assert re.search(rf"申請No\.{expert.id} は事務局の承認待ちです（{DAY} 現在商工会が承認）。", texts[0]), texts
        assert state_of(bot_app, REVIEWER) == (None, None)

    bot_app.text(SEC, f"/approve {expert.id}")
    assert "承認しました" in tap(bot_app, SEC, "c=yes")[0]
    texts = tap(bot_app, SEC, f"a=sec_approve&id={expert.id}")
    assert re.fullmatch(rf"申請No\.{expert.id} は承認済みです（{DAY} 事務局が承認）。", texts[0]), texts
    assert state_of(bot_app, SEC) == (None, None)
    assert re.search(rf"は承認済みです（{DAY} 事務局が承認）", tap(bot_app, REVIEWER, f"a=inst_reject&id={expert.id}")[0])
    # The typed command is answered the same way.
    assert "は承認済みです" in bot_app.text(SEC, f"/reject {expert.id} 念のため")[0]
    assert Expert.get_by_id(expert.id).status == "registered"

    # A confirmation card of a decision already over says so, instead of the menu.
    texts = tap(bot_app, SEC, "c=yes")
    assert "この確認はすでに終わっています" in texts[0] and "公式アカウント" not in texts[0]


def test_a_returned_application_tells_the_reviewer_who_returned_it(bot_app):
    inst, expert = setup(bot_app)
    tap(bot_app, REVIEWER, f"a=inst_return&id={expert.id}")
    bot_app.text(REVIEWER, "資格証明書が不鮮明です")
    tap(bot_app, REVIEWER, "c=yes")
    texts = tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    assert re.search(rf"申請No\.{expert.id} は差し戻し済みです（{DAY} 現在商工会が差し戻し）。", texts[0])
    assert "再送信すると、改めて届きます" in texts[0]


# --- the summary's 修正 / 送信 --------------------------------------------------------------


def test_send_and_fix_on_a_sent_summary_say_where_the_application_is(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "送信済み商工会", REVIEWER)
    register(bot_app, institution.code)
    assert "登録申請を送信しました" in tap(bot_app, APPLICANT, "p=submit")[0]
    expert = Expert.get(Expert.status == "pending_institution")

    for data in ("p=submit", "p=edit&s=phone"):
        texts = tap(bot_app, APPLICANT, data)
        assert texts[0].startswith(f"申請No.{expert.id} は送信済みです（送信済み商工会の審査中）。"), texts
        assert "結果はこのトークでお知らせします" in texts[0] and "公式アカウント" not in texts[0]
        assert bot_app.last_quick_reply(APPLICANT) == ["状況"]
    assert expert.draft == Expert.get_by_id(expert.id).draft, "nothing changed"

    tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    tap(bot_app, REVIEWER, "c=yes")
    bot_app.text(SEC, f"/approve {expert.id}")
    tap(bot_app, SEC, "c=yes")
    texts = tap(bot_app, APPLICANT, "p=submit")
    assert re.match(rf"申請No\.{expert.id} は承認済みです（{DAY} 事務局が承認）。", texts[0]), texts
    assert bot_app.last_quick_reply(APPLICANT) == ["委嘱条件"]

    # Once commissioned, what can be done is a change (登録内容の変更); a change sent is 審査中.
    Expert.update(status="commissioned").where(Expert.id == expert.id).execute()
    texts = tap(bot_app, APPLICANT, "p=submit")
    assert "現在：委嘱済み" in texts[0] and "「登録内容の変更」" in texts[0]
    assert bot_app.last_quick_reply(APPLICANT) == ["登録内容の変更"]
    bot_app.text(APPLICANT, "登録内容の変更")
    tap(bot_app, APPLICANT, "p=edit&s=email")
    bot_app.text(APPLICANT, "hanako.new@example.com")
    assert "変更申請を送信しました" in tap(bot_app, APPLICANT, "p=submit")[0]
    change = ChangeRequest.get()
    texts = tap(bot_app, APPLICANT, "p=submit")
    assert texts[0].startswith(f"変更申請No.{change.id} は審査中です。") and "審査結果をお待ちください" in texts[0]
    assert ChangeRequest.select().count() == 1

    tap(bot_app, REVIEWER, f"a=chg_approve&id={change.id}")
    tap(bot_app, REVIEWER, "c=yes")
    texts = tap(bot_app, REVIEWER, f"a=chg_return&id={change.id}")
    assert re.fullmatch(rf"変更申請No\.{change.id} は承認済みです（{DAY} 送信済み商工会が承認）。", texts[0]), texts
    assert state_of(bot_app, REVIEWER) == (None, None)


# --- dispatch answers and changes -------------------------------------------------------------


def test_old_dispatch_buttons_after_an_answer_and_after_a_cancel(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "派遣現在商工会", REVIEWER)
    expert = commissioned_expert(inst)
    dispatch = dispatch_for(expert, REVIEWER, status="requested")
    assert "受諾しました" in tap(bot_app, EXPERT, f"a=dsp_accept&id={dispatch.id}")[0]

    for data in (f"a=dsp_accept&id={dispatch.id}", f"a=dsp_decline&id={dispatch.id}"):
        texts = tap(bot_app, EXPERT, data)
        assert f"派遣No.{dispatch.id}（株式会社テスト製作所、" in texts[0] and "）は受諾済みです。" in texts[0], texts
        assert "「チェックイン」" in texts[0] and bot_app.last_quick_reply(EXPERT) == ["チェックイン"]
        assert state_of(bot_app, EXPERT) == (None, None), "no reason asked for a decline that cannot be"

    tap(bot_app, REVIEWER, f"a=dsp_cancel&id={dispatch.id}")
    bot_app.text(REVIEWER, "事業者の都合")
    assert "専門家に伝えました" in tap(bot_app, REVIEWER, "c=yes")[0]
    texts = tap(bot_app, EXPERT, f"a=dsp_accept&id={dispatch.id}")
    assert re.search(rf"は取り消されています（{DAY}、理由：事業者の都合）。", texts[0]), texts
    texts = tap(bot_app, REVIEWER, f"a=dsp_move&id={dispatch.id}")
    assert "は取り消されています" in texts[0] and "「支援依頼」" in texts[0]
    assert bot_app.last_quick_reply(REVIEWER) == ["支援依頼"] and state_of(bot_app, REVIEWER) == (None, None)
    assert Dispatch.get_by_id(dispatch.id).status == "cancelled"


def test_an_old_request_declined_meanwhile_and_one_checked_in(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "辞退商工会", REVIEWER)
    expert = commissioned_expert(inst)
    dispatch = dispatch_for(expert, REVIEWER, status="requested")
    tap(bot_app, EXPERT, f"a=dsp_decline&id={dispatch.id}")
    assert "辞退を担当者に伝えました" in bot_app.text(EXPERT, "日程が合いません")[0]
    texts = tap(bot_app, EXPERT, f"a=dsp_accept&id={dispatch.id}")
    assert re.search(rf"は辞退済みです（{DAY}、理由：日程が合いません）。", texts[0]), texts

    other = dispatch_for(expert, REVIEWER, status="accepted", name="株式会社チェック済み")
    DISPATCH.move(other, "check_in", actor=EXPERT)
    texts = tap(bot_app, REVIEWER, f"a=dsp_cancel&id={other.id}")
    assert "は支援中です（チェックイン済み）。" in texts[0] and "変更できません" in texts[0]


# --- consent and acceptance -----------------------------------------------------------------------


def test_consent_and_acceptance_tapped_twice_and_versions_named_as_editions(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "registered"
    expert.save()
    texts = bot_app.text(EXPERT, "委嘱条件")
    assert any("上記の委嘱条件 第1版（2026年4月）に同意しますか？" in t for t in texts), texts

    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    assert "同意を記録しました" in texts[0]
    sent = last_messages(bot_app, EXPERT)
    card = sent[-1]
    assert card["type"] == "flex" and "委嘱状" in card["altText"], "the letter card arrives, last"
    footer = card["contents"]["footer"]["contents"]
    assert (footer[-1]["action"]["label"], footer[-1]["action"]["data"]) == ("就任を承諾する", "a=accept"), "the last action"
    assert any("委嘱条件：第1版（2026年4月）" in t for t in texts) and "2026-04" not in json.dumps(sent, ensure_ascii=False)

    # 同意する again (and 同意しない): what was agreed and when, and the next step.
    for answer in ("yes", "no"):
        texts = tap(bot_app, EXPERT, f"a=consent&ans={answer}&v=2026-04")
        assert re.fullmatch(rf"委嘱条件 第1版（2026年4月）には{DAY}に同意済みです。\n委嘱状の「就任を承諾する」を押すか、"
                            "「就任承諾」と送ってください。", texts[0]), texts
        assert bot_app.last_quick_reply(EXPERT) == ["就任承諾", "委嘱状"]
    assert state_of(bot_app, EXPERT) == (None, None), "no refusal reason asked"

    texts = tap(bot_app, EXPERT, "a=accept")
    assert "委嘱条件（第1版・2026年4月）を遵守します" in texts[0]
    bot_app.text(EXPERT, "山田太郎")
    assert "委嘱の手続きはすべて完了" in tap(bot_app, EXPERT, "c=yes")[0]
    number = Expert.get_by_id(expert.id).commission_number

    texts = tap(bot_app, EXPERT, "a=accept")
    assert re.fullmatch(rf"就任承諾書は{DAY}に受け付け済みです（委嘱番号 {number}）。委嘱の手続きは完了しています。", texts[0])
    assert state_of(bot_app, EXPERT) == (None, None)
    assert "この確認はすでに終わっています" in tap(bot_app, EXPERT, "c=yes")[0]
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    assert "同意済みです" in texts[0] and "委嘱の手続きは完了しています" in texts[0]


def test_acceptance_before_consent_asks_for_the_consent_first(bot_app):
    inst, expert = setup(bot_app)
    texts = tap(bot_app, EXPERT, "a=accept")
    assert f"申請No.{expert.id} は送信済みです（現在商工会の審査中）。" in texts[0] and "就任承諾の手続きはありません" in texts[0]
    expert.status = "registered"
    expert.save()
    texts = tap(bot_app, EXPERT, "a=accept")
    assert "委嘱条件への同意が必要です" in texts[0] and any("同意しますか" in t for t in texts)


def test_a_revision_is_named_by_its_edition(bot_app):
    import dataclasses

    from conversations.commission.acceptance import announce_new_conditions
    from handlers import outbox
    from program import VersionedText
    from tests.actors import pushed_texts

    inst, expert = setup(bot_app)
    expert.status, expert.conditions_version = "commissioned", "2026-04"
    expert.save()
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, conditions=VersionedText("2027-04", "改訂した委嘱条件"))
    outbox.enqueue(announce_new_conditions(bot_app.rt.program)[0])
    pushed = pushed_texts(bot_app, EXPERT)
    assert any("委嘱条件が第2版（2027年4月）に改訂されました" in t for t in pushed), pushed
    assert any("改訂後の委嘱条件 第2版（2027年4月）に同意しますか？" in t for t in pushed)
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2027-04")
    assert "改訂後の委嘱条件 第2版（2027年4月）への同意を記録しました" in texts[0]
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2027-04")
    assert re.match(rf"委嘱条件 第2版（2027年4月）には{DAY}に同意済みです。", texts[0]), texts


# --- a flow set aside ----------------------------------------------------------------------------


def test_a_paused_form_is_recalled_and_resumes_where_it_stopped(bot_app):
    walk_to(bot_app, "phone", USER)
    assert "一時停止" in bot_app.text(USER, "キャンセル")[0]
    texts = bot_app.text(USER, "こんにちは")
    assert texts == ["入力途中の「プロフィール登録」があります（次は：電話番号）。\n"
                     "「続きから」と送ると、その質問から再開できます。入力済みの内容は保存されています。"], texts
    assert bot_app.last_quick_reply(USER) == ["続きから", "やめる"]
    assert "一時停止しています" in bot_app.text(USER, "やめる")[0]
    texts = bot_app.text(USER, "続きから")
    assert any("電話番号" in t for t in texts) and state_of(bot_app, USER) == ("profile", "phone")
    bot_app.text(USER, "090-2468-1357")
    assert state_of(bot_app, USER) == ("profile", "email")
    draft = Expert.get().draft
    assert (draft["family_name"], draft["kana_family"], draft["phone"]) == ("山田", "ヤマダ", "+819024681357")


def test_a_form_left_for_another_flow_is_recalled_from_what_sql_kept(bot_app):
    walk_to(bot_app, "birthdate", USER)
    bot_app.text(USER, "退会")  # sets the form aside; the withdrawal's confirmation takes the session
    assert "取りやめました" in tap(bot_app, USER, "c=no")[0]
    assert state_of(bot_app, USER) == (None, None)
    texts = bot_app.text(USER, "よろしくお願いします")
    assert texts[0].startswith("入力途中の「プロフィール登録」があります（次は：生年月日）。"), texts
    texts = bot_app.text(USER, "続きから")
    assert texts[0] == "入力途中の「プロフィール登録」を再開します。" and state_of(bot_app, USER) == ("profile", "birthdate")


def test_an_old_button_while_a_flow_is_paused_recalls_the_flow(bot_app):
    walk_to(bot_app, "kana", USER)
    bot_app.text(USER, "キャンセル")
    texts = tap(bot_app, USER, "c=yes")
    assert "一時停止中" in texts[0] and "入力途中の「プロフィール登録」があります（次は：フリガナ）" in texts[-1]
    assert state_of(bot_app, USER) == ("profile", "kana")


def test_nothing_kept_gives_the_menu_and_a_form_paused_at_its_start_is_recalled(bot_app):
    assert "公式アカウント" in bot_app.text(USER, "こんにちは")[0], "nothing kept: the menu"
    bot_app.say(USER, "follow")
    bot_app.text(USER, "キャンセル")  # at the terms: nothing answered yet
    texts = bot_app.text(USER, "こんにちは")
    assert "入力途中の「プロフィール登録」があります（次は：個人情報の取扱いへの同意）" in texts[0]


# --- stickers and files ------------------------------------------------------------------------------


def test_the_new_event_builders_match_lines_webhook_spec():
    user, token = "U" + "a" * 32, "r" * 32
    built = [events.sticker(user, token), events.sticker(user, token, keywords=["OK", "了解"]),
             events.file(user, token), events.video(user, token), events.audio(user, token)]
    for event in built:
        request = {"destination": events.DEFAULT_DESTINATION, "events": [event]}
        assert schema_validator("CallbackRequest", WEBHOOK_SPEC).violations(request) == [], event["message"]["type"]


def test_a_sticker_or_file_in_a_question_is_thanked_and_the_question_asked_again(bot_app):
    walk_to(bot_app, "phone", USER)
    texts = send(bot_app, USER, events.sticker)
    assert texts[0] == "スタンプありがとうございます。いまは「電話番号」を入力してください。", texts
    assert any("電話番号" in t for t in texts[1:]) and state_of(bot_app, USER) == ("profile", "phone")
    for build, name in ((events.file, "ファイル"), (events.video, "動画"), (events.audio, "音声メッセージ")):
        texts = send(bot_app, USER, build)
        assert texts[0] == f"{name}は受け取れません。いまは「電話番号」を入力してください。", texts
    assert session_retries(bot_app, USER) == {}, "not counted as wrong answers"
    bot_app.text(USER, "090-2468-1357")
    assert state_of(bot_app, USER) == ("profile", "email") and Expert.get().draft["family_name"] == "山田"


def test_a_file_where_a_photo_is_expected_asks_for_it_as_a_photo(bot_app):
    walk_to(bot_app, "photo_face", USER)
    texts = send(bot_app, USER, events.file, file_name="IMG_0001.jpg")
    assert texts[0] == "ファイルではなく、写真（画像）として送ってください。" and any("顔写真" in t for t in texts[1:])
    texts = send(bot_app, USER, events.sticker)
    assert texts[0].startswith("スタンプありがとうございます。いまは「") and "写真で送ってください" in texts[0]
    assert state_of(bot_app, USER) == ("profile", "photo_face") and session_retries(bot_app, USER) == {}


def test_stickers_and_files_outside_a_flow_get_a_one_liner_with_the_menu(bot_app):
    inst = repo.create_institution("スタンプ商工会", "よろず")
    commissioned_expert(inst)
    texts = send(bot_app, EXPERT, events.sticker)
    assert texts == ["スタンプありがとうございます。ご用件はメニューから選ぶか、文字で送ってください（「ヘルプ」で使い方を確認できます）。"]
    assert bot_app.last_quick_reply(EXPERT) == ["状況", "ヘルプ"]
    texts = send(bot_app, EXPERT, events.file)
    assert texts == ["ファイルは受け取れません。ご用件は文字で、書類は写真（画像）で送ってください。"]
    secretariat(bot_app)
    assert "事務局メンバー" in send(bot_app, SEC, events.sticker)[0]
    # With a flow set aside, the sticker recalls it.
    walk_to(bot_app, "email", USER)
    bot_app.text(USER, "キャンセル")
    texts = send(bot_app, USER, events.sticker)
    assert texts[0].startswith("スタンプありがとうございます。\n入力途中の「プロフィール登録」があります（次は：メールアドレス）")
