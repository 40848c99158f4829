"""One expert from follow to commissioned, with a reviewer and the secretariat in the same test.

Everything goes through signed webhooks and the fake LINE platform, which
checks every reply and push against LINE's OpenAPI spec (the fixture fails
the test on any violation).
"""
from __future__ import annotations

import json
import re

import requests

from storage import repo
from storage.models import AuditLog, Expert, Outbox
from tests.actors import REVIEWER, SEC, expert_of, institution_with_reviewer, photo, secretariat, send_photo, step_of

EXPERT = "U" + "ab" * 16
PHONE_DIGITS = "09024681357"
EMAIL = "hanako.suzuki@example.com"
ACCOUNT = "7654321"


def image_urls(node: object) -> list[str]:
    """The URLs of every Flex image component in a message."""
    if isinstance(node, dict):
        own = [node["url"]] if node.get("type") == "image" and "url" in node else []
        return own + [u for value in node.values() for u in image_urls(value)]
    if isinstance(node, list):
        return [u for value in node for u in image_urls(value)]
    return []


def register(bot_app, code: str) -> list[str]:
    """The expert fills in the whole form; returns the texts of the last reply (the summary)."""
    bot_app.say(EXPERT, "follow")
    script = [
        "同意する", code, "鈴木 花子", "すずき はなこ", "昭和55年4月1日", "０９０－２４６８－１３５７", EMAIL,
        "〒100-0001", "東京都千代田区丸の内1-1-1", "中小企業診断士", "完了", "完了", "2", "完了", "関東", "完了",
        "0001", "はい", "新宿", "はい", "普通", ACCOUNT, "スズキ ハナコ",
    ]
    for answer in script:
        texts = bot_app.text(EXPERT, answer)
        assert not any("エラーが発生しました" in t for t in texts), (answer, texts)
    assert step_of(bot_app, EXPERT) == "photo_face", step_of(bot_app, EXPERT)
    assert texts[-1].startswith("顔写真を送ってください。"), texts[-1]
    send_photo(bot_app, EXPERT, "red")
    send_photo(bot_app, EXPERT, "green")
    send_photo(bot_app, EXPERT, "blue")
    texts = send_photo(bot_app, EXPERT, "white")
    assert step_of(bot_app, EXPERT) == "confirm"
    return texts


def test_follow_to_commissioned_with_reviewer_and_secretariat(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "ジャーニー商工会", REVIEWER)
    texts = register(bot_app, institution.code)
    assert "登録内容の確認" in texts[-2] and "送信" in texts[-1]
    summary = json.dumps(bot_app.line.messages_for(EXPERT)[-2], ensure_ascii=False)
    assert "昭和55年4月1日（1980年4月1日）" in summary, "the summary shows the birthdate as the chat did"
    # The photos are small images behind short-lived signed links, not codes like 「提出済み（39af9d）」.
    images = image_urls(bot_app.line.messages_for(EXPERT)[-2])
    assert len(images) == 4 and all("/files/" in url for url in images), summary
    local = bot_app.url + "/files/" + images[0].rsplit("/files/", 1)[1]  # the bot, not its public address
    assert requests.get(local, timeout=5).headers["Content-Type"] == "image/jpeg"

    # 修正 from the summary jumps to the item and comes straight back.
    texts = bot_app.say(EXPERT, "postback", data="p=edit&s=email")
    assert any("メール" in t for t in texts)
    texts = bot_app.text(EXPERT, EMAIL)
    assert step_of(bot_app, EXPERT) == "confirm"

    texts = bot_app.say(EXPERT, "postback", data="p=submit")
    assert "登録申請を送信しました" in texts[0]
    expert = expert_of(EXPERT)
    assert expert.status == "pending_institution" and expert.family_name == "鈴木"
    bot_app.drain()
    reviewer_texts = bot_app.texts_since(REVIEWER, 0)
    assert any("新しい専門家登録の申請" in t for t in reviewer_texts)

    # The reviewer opens the details: photos come as short-lived signed links.
    bot_app.say(REVIEWER, "postback", data=f"a=detail&id={expert.id}")
    card = bot_app.line.deliveries_for(REVIEWER)[-1]["messages"][0]
    links = re.findall(r'"uri": "([^"]+/files/[^"]+)"', json.dumps(card))
    assert len(links) == 4
    local = bot_app.url + "/files/" + links[0].rsplit("/files/", 1)[1]
    response = requests.get(local, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"

    bot_app.say(REVIEWER, "postback", data=f"a=inst_approve&id={expert.id}")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    bot_app.drain()
    bot_app.text(SEC, f"/approve {expert.id}")
    bot_app.say(SEC, "postback", data="c=yes")
    bot_app.drain()
    assert any("委嘱条件" in t for t in bot_app.texts_since(EXPERT, 0))

    texts = bot_app.say(EXPERT, "postback", data="a=consent&ans=yes&v=2026-04")
    assert any("委嘱状" in t for t in texts)
    bot_app.say(EXPERT, "postback", data="a=accept")
    bot_app.text(EXPERT, "鈴木　花子")
    texts = bot_app.say(EXPERT, "postback", data="c=yes")
    assert "委嘱の手続きはすべて完了" in texts[0]
    bot_app.drain()

    expert = Expert.get_by_id(expert.id)
    assert expert.status == "commissioned"
    assert expert.profile["email"] == EMAIL  # the approved answers are in force
    changes = [(a.before, a.after) for a in AuditLog.select().where(AuditLog.action == "status.change").order_by(AuditLog.id)]
    assert changes == [("draft", "pending_institution"), ("pending_institution", "pending_secretariat"),
                       ("pending_secretariat", "registered"), ("registered", "conditions_agreed"),
                       ("conditions_agreed", "commissioned")]
    assert Outbox.select().where(Outbox.status != "sent").count() == 0

    # Nothing personal in the logs of the whole journey.
    blob = "\n".join(bot_app.log_lines())
    for secret in (EXPERT, ACCOUNT, PHONE_DIGITS, "+819024681357", "090-2468-1357", EMAIL, "鈴木", "花子", "スズキ", "ｽｽﾞｷ"):
        assert secret not in blob, secret


def test_returned_application_reopens_the_form_with_the_reason(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "差戻商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    expert = expert_of(EXPERT)
    bot_app.say(REVIEWER, "postback", data=f"a=inst_return&id={expert.id}")
    bot_app.text(REVIEWER, "住所に建物名を追加してください")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    bot_app.drain()
    texts = bot_app.text(EXPERT, "登録")
    assert any("住所に建物名を追加してください" in t for t in texts)
    bot_app.say(EXPERT, "postback", data="p=edit&s=postal")
    bot_app.text(EXPERT, "100-0001")
    bot_app.text(EXPERT, "東京都千代田区丸の内1-1-1 丸の内ビル5階")
    assert step_of(bot_app, EXPERT) == "confirm"
    texts = bot_app.text(EXPERT, "送信")
    assert "登録申請を送信しました" in texts[0]
    assert Expert.get_by_id(expert.id).status == "pending_institution"


def test_a_too_small_photo_is_refused_with_a_retake(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "写真商工会", REVIEWER)
    bot_app.say(EXPERT, "follow")
    for answer in ["同意する", institution.code, "鈴木 花子", "すずき はなこ", "昭和55年4月1日", "09024681357", EMAIL,
                   "1000001", "東京都千代田区丸の内1-1-1", "なし", "1", "完了", "15", "製造業の経営", "1", "完了", "東京", "完了",
                   "0001", "はい", "新宿", "はい", "普通", ACCOUNT, "スズキ ハナコ"]:
        bot_app.text(EXPERT, answer)
    assert step_of(bot_app, EXPERT) == "photo_face", step_of(bot_app, EXPERT)
    texts = send_photo(bot_app, EXPERT, "red", (200, 200))
    assert "小さすぎます" in texts[0] and step_of(bot_app, EXPERT) == "photo_face"
    texts = bot_app.text(EXPERT, "写真はあとで")
    assert "写真を送ってください" in texts[0]
    send_photo(bot_app, EXPERT, "red")
    send_photo(bot_app, EXPERT, "green")
    assert step_of(bot_app, EXPERT) == "photo_passbook", "no qualification named → no 資格証明書"


def test_several_photos_sent_together_fill_the_slots_in_order(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "まとめ商工会", REVIEWER)
    bot_app.say(EXPERT, "follow")
    for answer in ["同意する", institution.code, "鈴木 花子", "すずき はなこ", "昭和55年4月1日", "09024681357", EMAIL,
                   "1000001", "東京都千代田区丸の内1-1-1", "なし", "1", "完了", "15", "製造業の経営", "1", "完了", "東京",
                   "完了", "0001", "はい", "新宿", "はい", "普通", ACCOUNT, "スズキ ハナコ"]:
        bot_app.text(EXPERT, answer)
    assert step_of(bot_app, EXPERT) == "photo_face"
    image_set = "imgset-1"
    batch = [bot_app.event(EXPERT, "image", messageId=photo(bot_app, color),
                           imageSet={"id": image_set, "index": i + 1, "total": 3})
             for i, color in enumerate(["red", "green", "blue"])]
    assert bot_app.post(batch).status_code == 200
    assert step_of(bot_app, EXPERT) == "confirm"
    photos = expert_of(EXPERT).draft["photos"]
    assert set(photos) == {"face", "id_doc", "passbook"} and len(set(photos.values())) == 3


def test_changing_the_kana_after_the_account_is_caught_at_submit(bot_app):
    """Own-name account (SPEC): the holder was checked when typed; a フリガナ changed
    from the summary afterwards is checked again at 送信."""
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "名義商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=edit&s=kana")
    bot_app.text(EXPERT, "たなか いちろう")
    assert step_of(bot_app, EXPERT) == "confirm"
    texts = bot_app.say(EXPERT, "postback", data="p=submit")
    assert "口座名義がフリガナ（タナカ　イチロウ）と一致しません" in texts[0], texts
    expert = expert_of(EXPERT)
    assert expert.status == "draft" and step_of(bot_app, EXPERT) == "confirm"
    bot_app.say(EXPERT, "postback", data="p=edit&s=kana")
    bot_app.text(EXPERT, "すずき はなこ")
    assert "登録申請を送信しました" in bot_app.say(EXPERT, "postback", data="p=submit")[0]


def test_an_account_already_registered_by_another_application_is_flagged_to_the_reviewer(bot_app):
    """DESIGN: the keyed blind index finds duplicate accounts without decrypting them."""
    from tests.actors import submitted_application

    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "重複商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    first = expert_of(EXPERT)
    assert first.account_blind and first.account_blind != ACCOUNT, "a keyed index, not the number"
    second = submitted_application(institution, "U" + "cd" * 16, account_blind=first.account_blind)
    second.account_blind = first.account_blind  # as 送信 records it
    second.save()
    other = submitted_application(institution, "U" + "ef" * 16, account_blind="another-account")

    def cards_after(action) -> str:
        seen = bot_app._seq(REVIEWER)
        action()
        return json.dumps([m for d in bot_app.line.deliveries_for(REVIEWER, after=seen) for m in d["messages"]],
                          ensure_ascii=False)

    queue = cards_after(lambda: bot_app.text(REVIEWER, "審査待ち"))
    assert queue.count("同じ振込口座が") == 2, "both applications sharing it are flagged"
    assert f"同じ振込口座が申請No.{first.id}でも登録されています" in queue
    assert f"同じ振込口座が申請No.{second.id}でも登録されています" in queue
    detail = cards_after(lambda: bot_app.say(REVIEWER, "postback", data=f"a=detail&id={other.id}"))
    assert "申請No." in detail and "同じ振込口座" not in detail


def test_an_application_to_an_institution_without_reviewers_reaches_the_secretariat(bot_app):
    """送信 to an institution nobody reviews for yet: the application is sent, and the
    secretariat is told to issue a reviewer code (this path used to raise NameError)."""
    secretariat(bot_app)
    institution = repo.create_institution("担当者なし商工会", "よろず")
    register(bot_app, institution.code)
    texts = bot_app.say(EXPERT, "postback", data="p=submit")
    assert "登録申請を送信しました" in texts[0]
    assert expert_of(EXPERT).status == "pending_institution"
    bot_app.drain()
    notices = bot_app.texts_since(SEC, 0)
    assert any("担当者なし商工会" in t and "担当者が登録されていません" in t for t in notices), notices
