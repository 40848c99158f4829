"""After approval: a change of profile or bank account is re-reviewed by the institution."""
from __future__ import annotations

from storage.models import ChangeRequest, Expert
from tests.actors import REVIEWER, SEC, expert_of, institution_with_reviewer, secretariat, send_photo, step_of
from tests.test_journey import EXPERT, register


def commissioned(bot_app) -> Expert:
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "変更商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.text(EXPERT, "送信")
    expert = expert_of(EXPERT)
    expert.status = "commissioned"
    expert.profile = dict(expert.draft)
    expert.save()
    return expert


def test_profile_change_needs_the_institutions_approval_and_the_old_data_stays_in_force(bot_app):
    expert = commissioned(bot_app)
    texts = bot_app.text(EXPERT, "登録内容の変更")
    assert "支援機関の承認までは" in texts[0] and step_of(bot_app, EXPERT) == "confirm"
    bot_app.say(EXPERT, "postback", data="p=edit&s=phone")
    bot_app.text(EXPERT, "03-1234-5678")
    assert step_of(bot_app, EXPERT) == "confirm"
    texts = bot_app.text(EXPERT, "送信")
    assert "変更申請を送信しました" in texts[0]
    expert = Expert.get_by_id(expert.id)
    assert expert.profile["phone"] == "+819024681357", "the approved number stays in force"
    assert expert.draft["phone"] == "+81312345678"
    bot_app.drain()
    # The card's first line says why it arrived.
    assert any(t.startswith("登録内容の変更申請が届きました：承認または差し戻しを") for t in bot_app.texts_since(REVIEWER, 0))
    change = ChangeRequest.get()
    assert change.changed[0][0] == "電話番号" and not change.bank_changed

    assert "審査中" in bot_app.text(EXPERT, "登録内容の変更")[0]
    bot_app.say(REVIEWER, "postback", data=f"a=chg_approve&id={change.id}")
    texts = bot_app.say(REVIEWER, "postback", data="c=yes")
    assert "承認しました" in texts[0]
    assert Expert.get_by_id(expert.id).profile["phone"] == "+81312345678"
    bot_app.drain()
    assert any("変更（電話番号）が承認されました" in t for t in bot_app.texts_since(EXPERT, 0))


def test_bank_change_needs_a_new_passbook_photo(bot_app):
    commissioned(bot_app)
    bot_app.text(EXPERT, "登録内容の変更")
    bot_app.say(EXPERT, "postback", data="p=edit&s=bank")
    for answer in ["0005", "はい", "001", "はい", "普通", "1111111", "スズキ ハナコ"]:
        bot_app.text(EXPERT, answer)
    assert step_of(bot_app, EXPERT) == "confirm"
    texts = bot_app.text(EXPERT, "送信")
    assert "新しい口座の通帳の写真" in texts[0]
    bot_app.say(EXPERT, "postback", data="p=edit&s=photo_passbook")
    send_photo(bot_app, EXPERT, "yellow")
    texts = bot_app.text(EXPERT, "送信")
    assert "変更申請を送信しました" in texts[0]
    assert ChangeRequest.get().bank_changed


def test_returned_change_keeps_the_old_data_and_tells_the_reason(bot_app):
    expert = commissioned(bot_app)
    bot_app.text(EXPERT, "登録内容の変更")
    bot_app.say(EXPERT, "postback", data="p=edit&s=email")
    bot_app.text(EXPERT, "new@example.com")
    bot_app.text(EXPERT, "送信")
    change = ChangeRequest.get()
    other = "U" + "7e" * 16
    institution_with_reviewer(bot_app, "他の商工会", other)
    assert "権限がありません" in bot_app.say(other, "postback", data=f"a=chg_approve&id={change.id}")[0]
    bot_app.say(REVIEWER, "postback", data=f"a=chg_return&id={change.id}")
    bot_app.text(REVIEWER, "本人確認のため電話でご連絡ください")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    assert ChangeRequest.get_by_id(change.id).status == "returned"
    assert Expert.get_by_id(expert.id).profile["email"] != "new@example.com"
    bot_app.drain()
    assert any("本人確認のため電話でご連絡ください" in t for t in bot_app.texts_since(EXPERT, 0))
    texts = bot_app.text(EXPERT, "登録内容の変更")  # the returned change can be fixed and sent again
    assert "支援機関の承認までは" in texts[0] and step_of(bot_app, EXPERT) == "confirm"


def test_a_new_surname_needs_the_account_in_that_name_and_is_searchable_once_approved(bot_app):
    """A marriage: フリガナ and the account holder change together (own-name rule), and once the
    institution approves, the secretariat finds the expert by the new フリガナ."""
    expert = commissioned(bot_app)
    bot_app.text(EXPERT, "登録内容の変更")
    bot_app.say(EXPERT, "postback", data="p=edit&s=kana")
    bot_app.text(EXPERT, "たなか はなこ")
    assert "口座名義がフリガナ（タナカ　ハナコ）と一致しません" in bot_app.text(EXPERT, "送信")[0]
    bot_app.say(EXPERT, "postback", data="p=edit&s=bank")
    for answer in ["0001", "はい", "新宿", "はい", "普通", "7654321", "タナカ ハナコ"]:
        bot_app.text(EXPERT, answer)
    bot_app.say(EXPERT, "postback", data="p=edit&s=photo_passbook")
    send_photo(bot_app, EXPERT, "yellow")
    assert "変更申請を送信しました" in bot_app.text(EXPERT, "送信")[0]
    assert "一致する申請はありません" in bot_app.text(SEC, "/find タナカ")[0], "not in force before approval"
    change = ChangeRequest.get()
    bot_app.say(REVIEWER, "postback", data=f"a=chg_approve&id={change.id}")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    assert Expert.get_by_id(expert.id).kana == "タナカ　ハナコ"
    assert f"No.{expert.id}" in bot_app.text(SEC, "/find タナカ ハナコ")[0]
