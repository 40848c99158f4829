"""Profile entry steps 1–4, driven through signed webhooks like LINE does."""
from __future__ import annotations

from conversations.registration import form as profile
from storage import repo
from storage.models import AuditLog, LineUser
from tests.actors import draft_of

USER = "U" + "1" * 32


def make_institution(name: str = "テスト商工会議所") -> str:
    return repo.create_institution(name, "認定支援機関").code


def at_the_name_step(bot_app) -> str:
    """follow → 同意する → the institution's code, so the name is asked next; the code."""
    code = make_institution()
    bot_app.say(USER, "follow")
    bot_app.text(USER, "同意する")
    bot_app.text(USER, code)
    return code


def test_follow_starts_registration_with_terms(bot_app):
    texts = bot_app.say(USER, "follow")
    assert "友だち追加ありがとうございます" in texts[0]
    assert "個人情報の取扱い" in texts[1]
    assert bot_app.last_quick_reply(USER) == ["同意する", "同意しない"]


def test_steps_one_to_four_save_each_answer_to_the_draft(bot_app):
    code = make_institution()
    bot_app.say(USER, "follow")
    texts = bot_app.text(USER, "同意する")
    assert any("機関コード" in t for t in texts)
    assert draft_of(USER)["terms_version"] == "2026-04"

    texts = bot_app.text(USER, code.lower())
    assert any("テスト商工会議所" in t for t in texts)
    assert any("氏名を入力" in t for t in texts)

    texts = bot_app.text(USER, "山田　 太郎")
    assert draft_of(USER)["family_name"] == "山田"
    assert any("フリガナ" in t for t in texts)

    texts = bot_app.text(USER, "やまだ たろう")
    draft = draft_of(USER)
    assert (draft["kana_family"], draft["kana_given"]) == ("ヤマダ", "タロウ")
    assert any("ヤマダ　タロウ" in t for t in texts)
    assert profile.FLOW.machine.models == [], "sessions must be detached from the shared machine"


def test_terms_declined_ends_politely_and_is_audited(bot_app):
    bot_app.say(USER, "follow")
    texts = bot_app.text(USER, "同意しない")
    assert "登録を進めることができません" in texts[0]
    assert AuditLog.select().where(AuditLog.action == "terms.declined").count() == 1
    # At rest now: 登録 starts again at the terms.
    assert any("個人情報の取扱い" in t for t in bot_app.text(USER, "登録"))


def test_invalid_answer_explains_and_asks_again(bot_app):
    make_institution()
    bot_app.say(USER, "follow")
    bot_app.text(USER, "同意する")
    texts = bot_app.text(USER, "わかりません")
    assert "英数字6桁" in texts[0]
    assert "機関コード" in texts[-1]
    texts = bot_app.text(USER, "ZZZZZZ")
    assert "見つかりませんでした" in texts[0]


def test_three_invalid_answers_offer_help_and_pause(bot_app):
    bot_app.say(USER, "follow")
    bot_app.text(USER, "同意する")
    bot_app.text(USER, "x")
    bot_app.text(USER, "y")
    texts = bot_app.text(USER, "z")
    assert "うまくいかない" in texts[0]
    assert bot_app.last_quick_reply(USER) == ["ヘルプ", "キャンセル"]


def test_institution_code_as_first_message_starts_registration(bot_app):
    code = make_institution("QR商工会")
    texts = bot_app.text(USER, f"機関コード:{code}")
    assert "QR商工会" in texts[0]
    assert any("個人情報の取扱い" in t for t in texts)
    texts = bot_app.text(USER, "1")  # typed number of 同意する
    assert any("氏名を入力" in t for t in texts), "institution step is skipped when the code is known"


def test_global_commands_back_help_status_cancel_resume(bot_app):
    code = at_the_name_step(bot_app)
    texts = bot_app.text(USER, "状況")
    assert "「氏名」を入力中" in texts[0]
    texts = bot_app.text(USER, "ヘルプ")
    assert "スペース" in texts[0] and "氏名を入力" in texts[-1]
    texts = bot_app.text(USER, "戻る")
    assert "一つ前" in texts[0] and "機関コード" in texts[-1]
    bot_app.text(USER, code)
    texts = bot_app.text(USER, "キャンセル")
    assert "一時停止" in texts[0]
    texts = bot_app.text(USER, "山田 太郎")  # paused: not taken as an answer
    assert "family_name" not in draft_of(USER)
    texts = bot_app.text(USER, "続きから")
    assert "再開" in texts[0] and "氏名" in texts[-1]
    bot_app.text(USER, "山田 太郎")
    assert draft_of(USER)["family_name"] == "山田"


def test_restart_asks_first_then_clears_the_draft(bot_app):
    at_the_name_step(bot_app)
    texts = bot_app.text(USER, "最初から")
    assert "最初からやり直しますか" in texts[0]
    texts = bot_app.text(USER, "いいえ")
    assert "取りやめ" in texts[0]
    assert draft_of(USER).get("institution_id")
    bot_app.text(USER, "最初から")
    texts = bot_app.text(USER, "はい")
    assert "消しました" in texts[0]
    assert draft_of(USER) == {}


def test_unfollow_clears_session_keeps_records(bot_app):
    at_the_name_step(bot_app)
    assert bot_app.say(USER, "unfollow") == []
    assert bot_app.rt.gate.read_session(USER) is None
    assert draft_of(USER)["institution_id"]
    assert LineUser.get(LineUser.line_user_id == USER).following is False
    texts = bot_app.say(USER, "follow")  # back again: resumes from the draft
    assert any("氏名" in t for t in texts)
