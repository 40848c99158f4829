"""Profile entry steps 5–13 (生年月日 … 振込口座), driven through signed webhooks like LINE does."""
from __future__ import annotations

import json
from datetime import date, datetime

from conversations.registration.identity import years_before
from storage import repo
from storage.db import database
from storage.models import AuditLog, Expert, Outbox
from tests.actors import draft_of, expert_of, step_of
from tests.helpers import TOKYO

USER = "U" + "5" * 32

# A default answer (or answers) for every question, so a test can walk to
# the step it is about and script only that part.
ANSWERS: dict[str, list[str]] = {
    "terms": ["同意する"],
    "name": ["山田 太郎"],
    "kana": ["やまだ たろう"],
    "birthdate": ["1980/4/1"],
    "phone": ["090-2468-1357"],
    "email": ["taro@example.com"],
    "postal": ["100-0001"],
    "address": ["東京都千代田区丸の内1-1-1"],
    "qualifications": ["税理士", "完了"],
    "qualification_other": ["社会保険労務士"],
    "requirements": ["完了"],
    "requirement_years": ["12"],
    "requirement_detail": ["製造業の経営者として生産管理を担当"],
    "expertise": ["1", "完了"],
    "areas": ["東京", "完了"],
    "bank": ["みずほ銀行"],
    "bank_confirm": ["はい"],
    "branch": ["新宿"],
    "branch_confirm": ["はい"],
    "account_type": ["普通"],
    "account_number": ["1234567"],
    "holder": ["ヤマダ タロウ"],
}


def raw_draft(user: str = USER) -> str:
    """The draft column exactly as stored."""
    expert = expert_of(user)
    sql = f"SELECT draft FROM {Expert._meta.table_name} WHERE id = {database.param}"
    (raw,) = database.execute_sql(sql, (expert.id,)).fetchone()
    return raw


def walk_to(bot_app, target: str, user: str = USER, **answers: list[str]) -> list[str]:
    """Follow, then answer every question with the defaults (or ``answers``) until ``target`` is asked."""
    code = repo.create_institution("テスト商工会議所", "認定支援機関").code
    script = {**ANSWERS, "institution": [code], **answers}
    texts = bot_app.say(user, "follow")
    for _ in range(40):
        state = step_of(bot_app, user)
        if state == target:
            return texts
        for answer in script[state]:
            texts = bot_app.text(user, answer)
    raise AssertionError(f"never reached {target}; stuck at {step_of(bot_app, user)}")


def asked(texts: list[str], *words: str) -> bool:
    return all(w in texts[-1] for w in words)


def today_in_tokyo() -> date:
    return datetime.now(TOKYO).date()


# --- 5. 生年月日 ------------------------------------------------------------------------------


def test_birthdate_from_the_date_picker_is_confirmed_in_wareki_and_seireki(bot_app):
    walk_to(bot_app, "birthdate")
    item = bot_app.line.deliveries_for(USER)[-1]["messages"][-1]["quickReply"]["items"][0]["action"]
    today = today_in_tokyo()
    assert (item["type"], item["mode"], item["data"]) == ("datetimepicker", "date", "dp=birthdate")
    assert item["max"] == years_before(today, 18).isoformat()
    assert item["min"] == years_before(today, 100).isoformat()

    texts = bot_app.say(USER, "postback", data="dp=birthdate", params={"date": "1980-04-01"})
    assert "昭和55年4月1日（1980年4月1日）" in texts[0]
    assert draft_of(USER)["birthdate"] == "1980-04-01"
    assert step_of(bot_app, USER) == "phone"


def test_birthdate_typed_in_wareki_checks_era_boundaries(bot_app):
    walk_to(bot_app, "birthdate")
    texts = bot_app.text(USER, "平成31年5月1日")
    assert "平成31年5月1日はありません" in texts[0] and "令和元年5月1日" in texts[0]
    # 平成31年4月30日 is a real date (the era check passes); today it is refused only for the age.
    texts = bot_app.text(USER, "平成31年4月30日")
    assert "ありません" not in texts[0] and "18歳以上" in texts[0]
    texts = bot_app.text(USER, "昭和64年1月8日")
    assert "平成元年1月8日" in texts[0]
    assert step_of(bot_app, USER) == "birthdate"
    texts = bot_app.text(USER, "Ｓ６４．１．７")
    assert "昭和64年1月7日（1989年1月7日）" in texts[0]
    assert draft_of(USER)["birthdate"] == "1989-01-07"


def test_birthdate_outside_18_to_100_is_refused(bot_app):
    walk_to(bot_app, "birthdate")
    texts = bot_app.text(USER, "1900年1月1日")
    assert "18歳以上100歳以下" in texts[0]
    too_young = years_before(today_in_tokyo(), 17)
    texts = bot_app.say(USER, "postback", data="dp=birthdate", params={"date": too_young.isoformat()})
    assert "17歳" in texts[0]
    assert "birthdate" not in draft_of(USER)


# --- 6–8. 電話・メール・郵便番号・住所 ------------------------------------------------------------------


def test_contact_details_are_normalised_and_bad_ones_explained(bot_app):
    walk_to(bot_app, "phone")
    texts = bot_app.text(USER, "０９０－１２３４ー５６７８")
    assert "090-1234-5678" in texts[0]
    assert draft_of(USER)["phone"] == "+819012345678"

    texts = bot_app.text(USER, "taro.example.com")
    assert "「@」がありません" in texts[0] and asked(texts, "メールアドレス")
    bot_app.text(USER, "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ")
    assert draft_of(USER)["email"] == "taro@example.com"

    texts = bot_app.text(USER, "〒１００ー０００１")
    assert draft_of(USER)["postal"] == "100-0001"
    assert asked(texts, "住所")
    texts = bot_app.text(USER, "1-2-3")
    assert "番号だけでは" in texts[0]
    bot_app.text(USER, "東京都千代田区丸の内１－１－１")
    assert draft_of(USER)["address"] == "東京都千代田区丸の内1-1-1"
    assert step_of(bot_app, USER) == "qualifications"


# --- 9. 保有資格 ----------------------------------------------------------------------------


def test_qualifications_toggle_by_tap_number_and_name_then_name_the_other(bot_app):
    walk_to(bot_app, "qualifications")
    assert bot_app.last_quick_reply(USER) == ["中小企業診断士", "税理士", "公認会計士", "弁護士", "技術士", "その他公的資格", "なし", "完了"]
    texts = bot_app.text(USER, "完了")
    assert "「なし」" in texts[0]
    texts = bot_app.text(USER, "１、３")
    assert "選択中：中小企業診断士、公認会計士" in texts[-1]
    assert "✓税理士" not in bot_app.last_quick_reply(USER) and "✓公認会計士" in bot_app.last_quick_reply(USER)
    texts = bot_app.text(USER, "公認会計士")  # a second tap takes it off
    assert texts[-1] == "選択中：中小企業診断士（1件）。続けて選ぶか「完了」"
    bot_app.text(USER, "6")
    assert draft_of(USER)["selecting"] == {"step": "qualifications", "items": ["中小企業診断士", "その他公的資格"]}
    texts = bot_app.text(USER, "完了")
    assert draft_of(USER)["qualifications"] == ["中小企業診断士", "その他公的資格"]
    assert "selecting" not in draft_of(USER)
    assert asked(texts, "「その他公的資格」の名称")
    bot_app.text(USER, "社会保険労務士")
    assert draft_of(USER)["qualification_other"] == "社会保険労務士"
    assert step_of(bot_app, USER) == "requirements"


def test_qualification_none_clears_the_choice(bot_app):
    walk_to(bot_app, "qualifications")
    bot_app.text(USER, "税理士")
    texts = bot_app.text(USER, "なし")
    assert "「なし」で保存" in texts[0]
    assert draft_of(USER)["qualifications"] == []
    assert "(a)は対象外" in texts[-1]


# --- 10. 登録要件 ------------------------------------------------------------------------------


def test_a_qualification_meets_requirement_a(bot_app):
    texts = walk_to(bot_app, "requirements")
    assert "保有資格（税理士）により、登録要件(a)" in texts[-1]
    texts = bot_app.text(USER, "該当なし")
    assert "登録要件(a)を満たしている" in texts[0]
    assert draft_of(USER)["requirements"] == [] and draft_of(USER)["requirements_met"] == ["a"]
    assert step_of(bot_app, USER) == "expertise"


def test_experience_requirement_with_enough_years_is_recorded(bot_app):
    walk_to(bot_app, "requirements", qualifications=["なし"])
    texts = bot_app.text(USER, "（ｂ）")
    assert "選択中：(b)" in texts[-1]
    texts = bot_app.text(USER, "完了")
    assert asked(texts, "(b) 経営者または技術者", "10年以上")
    texts = bot_app.text(USER, "約１２年")
    assert asked(texts, "12年", "一行")
    texts = bot_app.text(USER, "金属加工会社の経営者として生産管理を統括")
    assert "登録要件(b)を満たしている" in texts[0]
    draft = draft_of(USER)
    assert draft["requirements"] == [{"key": "b", "years": 12, "detail": "金属加工会社の経営者として生産管理を統括"}]
    assert draft["requirements_met"] == ["b"]
    assert step_of(bot_app, USER) == "expertise"


def test_requirements_short_of_the_minimum_are_dropped_and_none_met_is_refused(bot_app):
    walk_to(bot_app, "requirements", qualifications=["なし"])
    bot_app.text(USER, "1 3")
    bot_app.text(USER, "完了")
    texts = bot_app.text(USER, "8")  # (b) needs 10 years
    assert "(b)は10年以上の経験が条件" in texts[0] and asked(texts, "(d)")
    texts = bot_app.text(USER, "4年")  # (d) needs 5
    assert "(d)は5年以上" in texts[0]
    assert "いずれの要件にも当てはまらない" in texts[-1] and "送信していません" in texts[-1]
    for key in "abcd":
        assert f"({key})" in texts[-1]
    expert = Expert.get()
    assert expert.status == "draft" and expert.draft["requirements"] == []
    assert Outbox.select().count() == 0
    assert AuditLog.select().where(AuditLog.action == "registration.requirements_unmet").count() == 1
    assert bot_app.rt.gate.read_session(USER).flow is None  # at rest
    # 登録 later resumes at the requirements, answers kept.
    texts = bot_app.text(USER, "登録")
    assert step_of(bot_app, USER) == "requirements" and "(a)は対象外" in texts[-1]
    assert draft_of(USER)["phone"] == "+819024681357"


def test_none_applicable_without_a_qualification_is_refused(bot_app):
    walk_to(bot_app, "requirements", qualifications=["なし"])
    texts = bot_app.text(USER, "完了")
    assert "該当なし" in texts[0]  # asks to choose or say 該当なし
    texts = bot_app.text(USER, "該当なし")
    assert "登録申請は送信していません" in texts[-1]
    assert Expert.get().status == "draft"


def test_back_walks_through_each_requirement_sub_question(bot_app):
    walk_to(bot_app, "requirements", qualifications=["なし"])
    bot_app.text(USER, "b")
    bot_app.text(USER, "c")
    texts = bot_app.text(USER, "完了")
    assert asked(texts, "(b)", "年数")
    texts = bot_app.text(USER, "戻る")
    assert step_of(bot_app, USER) == "requirements" and "選択中：(b)、(c)" in texts[-1]
    bot_app.text(USER, "完了")
    bot_app.text(USER, "12")
    texts = bot_app.text(USER, "戻る")  # detail (b) → years (b)
    assert asked(texts, "(b)", "年数", "現在の回答：12年")
    bot_app.text(USER, "15")
    bot_app.text(USER, "製造業の経営者として生産管理を担当")
    texts = bot_app.text(USER, "戻る")  # years (c) → detail (b)
    assert step_of(bot_app, USER) == "requirement_detail" and asked(texts, "(b)", "15年", "製造業の経営者")
    texts = bot_app.text(USER, "小売業の経営者として店舗運営を担当")
    assert asked(texts, "(c)", "年数")
    bot_app.text(USER, "3")
    bot_app.text(USER, "商工会の経営指導員として販路開拓を支援")
    draft = draft_of(USER)
    assert draft["requirements"] == [
        {"key": "b", "years": 15, "detail": "小売業の経営者として店舗運営を担当"},
        {"key": "c", "years": 3, "detail": "商工会の経営指導員として販路開拓を支援"},
    ]
    assert draft["requirements_met"] == ["b", "c"]
    texts = bot_app.text(USER, "戻る")  # expertise → the last detail
    assert step_of(bot_app, USER) == "requirement_detail" and asked(texts, "(c)")


# --- 11. 専門分野 ------------------------------------------------------------------------------


def test_expertise_needs_at_least_one_and_takes_numbers_and_names(bot_app):
    walk_to(bot_app, "expertise")
    choices = bot_app.last_quick_reply(USER)
    assert len(choices) == 13 and choices[-1] == "完了"
    texts = bot_app.text(USER, "完了")
    assert "1つ以上" in texts[0]
    bot_app.text(USER, "1,3")
    bot_app.text(USER, "IT")  # a unique part of 「IT・デジタル化」
    texts = bot_app.text(USER, "99")
    assert "選択肢にありません" in texts[0]
    bot_app.text(USER, "完了")
    assert draft_of(USER)["expertise"] == ["経営戦略", "資金繰り・財務", "IT・デジタル化"]
    assert step_of(bot_app, USER) == "areas"


# --- 12. 対応地域 ------------------------------------------------------------------------------


def test_areas_by_region_buttons(bot_app):
    walk_to(bot_app, "areas")
    assert bot_app.last_quick_reply(USER) == ["北海道", "東北", "関東", "中部", "近畿", "中国", "四国", "九州・沖縄", "全国", "完了"]
    texts = bot_app.text(USER, "関東から選ぶ")  # what the 関東 button sends
    assert "茨城県" in texts[-1]
    assert bot_app.last_quick_reply(USER)[-3:] == ["その地方すべて", "地方一覧", "完了"]
    bot_app.text(USER, "東京都")
    texts = bot_app.text(USER, "7")  # 神奈川県, by its number in 関東
    assert "選択中：東京都、神奈川県" in texts[-1]
    texts = bot_app.text(USER, "地方一覧")
    assert "関東（2）" in bot_app.last_quick_reply(USER)
    bot_app.text(USER, "1")  # 北海道 is its own region: toggles at once
    bot_app.text(USER, "近畿から選ぶ")
    bot_app.text(USER, "近畿すべて")
    bot_app.text(USER, "完了")
    assert draft_of(USER)["areas"] == ["北海道", "東京都", "神奈川県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県"]
    assert step_of(bot_app, USER) == "bank"


def test_areas_typed_names_and_regions(bot_app):
    walk_to(bot_app, "areas")
    texts = bot_app.text(USER, "完了")
    assert "1つ以上" in texts[0]
    bot_app.text(USER, "東京、神奈川")
    texts = bot_app.text(USER, "四国")
    assert "選択中：東京都、神奈川県、徳島県、香川県、愛媛県、高知県" in texts[-1]
    bot_app.text(USER, "神奈川")  # one name toggles it off
    texts = bot_app.text(USER, "東京県")
    assert "東京県" in texts[0]
    bot_app.text(USER, "完了")
    assert draft_of(USER)["areas"] == ["東京都", "徳島県", "香川県", "愛媛県", "高知県"]


# --- 13. 振込口座 ------------------------------------------------------------------------------


def assert_no_plaintext(bot_app, *secrets: str) -> None:
    """Neither the draft, the session, the audit trail, the outbox nor the logs hold ``secrets``."""
    stores = {
        "draft": raw_draft(),
        "session": bot_app.rt.gate.read_session(USER).to_json() if bot_app.rt.gate.read_session(USER) else "",
        "audit": json.dumps([a.__data__ for a in AuditLog.select()], default=str, ensure_ascii=False),
        "outbox": json.dumps([o.messages for o in Outbox.select()], ensure_ascii=False),
        "logs": "\n".join(bot_app.log_lines()),
    }
    for name, text in stores.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in the {name}"


def test_bank_by_name_with_confirmation_then_branch_type_number_and_holder(bot_app):
    walk_to(bot_app, "bank")
    texts = bot_app.text(USER, "三菱")  # several candidates: listed with their codes
    assert "3件" in texts[0]
    assert bot_app.last_quick_reply(USER) == ["0005 三菱UFJ銀行", "0288 三菱UFJ信託銀行", "2820 長崎三菱信組"]
    texts = bot_app.text(USER, "ほげほげ銀行")  # nothing found: the candidates stay
    assert "見つかりませんでした" in texts[0]
    assert bot_app.last_quick_reply(USER)[0] == "0005 三菱UFJ銀行"
    texts = bot_app.text(USER, "1")
    assert "「三菱UFJ銀行」（金融機関コード 0005）でよろしいですか" in texts[-1]
    bot_app.text(USER, "はい")
    assert draft_of(USER)["bank_code"] == "0005"
    texts = bot_app.text(USER, "本店")
    assert "三菱UFJ銀行 本店" in texts[-1]
    bot_app.text(USER, "はい")
    texts = bot_app.text(USER, "3")
    assert draft_of(USER)["account_type"] == "貯蓄"
    texts = bot_app.text(USER, "３１４ー１５９")  # short: zero-padded to 7 digits
    assert "＊＊＊4159" in texts[0]
    texts = bot_app.text(USER, "やまだ　たろう")
    assert "振込口座を登録しました：三菱UFJ銀行 本店 貯蓄 ＊＊＊4159" in texts[0]
    draft = draft_of(USER)
    assert draft["branch_code"] == "001" and draft["account_last4"] == "＊＊＊4159"
    crypto = bot_app.rt.crypto
    assert crypto.decrypt(draft["account_number_enc"]) == "0314159"
    assert crypto.decrypt(draft["holder_enc"]) == "ﾔﾏﾀﾞ ﾀﾛｳ"
    assert draft["account_blind"] == crypto.blind_index("0005" + "001" + "0314159", "bank-account")
    assert step_of(bot_app, USER) == "photo_face"
    replies = [t for d in bot_app.line.deliveries_for(USER) for m in d["messages"] for t in [json.dumps(m, ensure_ascii=False)]]
    assert not any("314159" in r for r in replies)
    assert_no_plaintext(bot_app, "314159", "ﾔﾏﾀﾞ", "ヤマダ タロウ", "やまだ　たろう")


def test_bank_by_code_and_no_means_ask_again(bot_app):
    walk_to(bot_app, "bank")
    texts = bot_app.text(USER, "12345")
    assert "4桁" in texts[0]
    texts = bot_app.text(USER, "9999")
    assert "見つかりませんでした" in texts[0]
    texts = bot_app.text(USER, "０００９")
    assert "「三井住友銀行」" in texts[-1]
    texts = bot_app.text(USER, "いいえ")
    assert step_of(bot_app, USER) == "bank" and asked(texts, "金融機関名")
    texts = bot_app.text(USER, "戻る")  # the detour through the confirmation is forgotten
    assert step_of(bot_app, USER) == "areas"


def test_yucho_kigou_bangou_becomes_branch_and_number(bot_app):
    walk_to(bot_app, "bank")
    bot_app.text(USER, "ゆうちょ銀行")
    texts = bot_app.text(USER, "はい")
    assert asked(texts, "記号", "番号")
    texts = bot_app.text(USER, "24030-12345671")
    assert "「1」か「0」で始まる" in texts[0]
    texts = bot_app.text(USER, "１４０３０－１２３４５６７１")
    assert "四〇八店（店番 408） 普通 口座番号＊＊＊4567" in texts[0]
    draft = draft_of(USER)
    assert (draft["bank_code"], draft["branch_code"], draft["account_type"]) == ("9900", "408", "普通")
    assert bot_app.rt.crypto.decrypt(draft["account_number_enc"]) == "1234567"
    assert asked(texts, "口座名義")
    texts = bot_app.text(USER, "戻る")
    assert step_of(bot_app, USER) == "yucho"
    assert_no_plaintext(bot_app, "1234567", "12345671")


def test_holder_must_be_the_experts_own_name(bot_app):
    walk_to(bot_app, "holder")
    texts = bot_app.text(USER, "ヤマダ ハナコ")
    assert "本人名義の口座のみ登録できます" in texts[0] and "ヤマダ　タロウ" in texts[0]
    texts = bot_app.text(USER, "山田太郎")
    assert "漢字" in texts[0]
    assert "holder_enc" not in draft_of(USER)
    assert step_of(bot_app, USER) == "holder"
    bot_app.text(USER, "ﾔﾏﾀﾞ ﾀﾛｳ")
    assert step_of(bot_app, USER) == "photo_face"


def test_back_from_each_bank_sub_step_goes_to_the_previous_question(bot_app):
    walk_to(bot_app, "holder")
    expected = [
        ("account_number", "口座番号"),
        ("account_type", "口座の種類"),
        ("branch_confirm", "新宿支店"),
        ("branch", "支店名"),
        ("bank_confirm", "みずほ銀行"),
        ("bank", "金融機関名"),
        ("areas", "地域"),
    ]
    for state, words in expected:
        texts = bot_app.text(USER, "戻る")
        assert step_of(bot_app, USER) == state and words in texts[-1], (state, texts)
    # Back where it was, the bank and the account are still there.
    assert draft_of(USER)["account_last4"] == "＊＊＊4567"


def test_back_from_address_and_qualification_other(bot_app):
    walk_to(bot_app, "address")
    texts = bot_app.text(USER, "戻る")
    assert step_of(bot_app, USER) == "postal" and "現在の登録：100-0001" in texts[-1]
    bot_app.text(USER, "100-0001")
    bot_app.text(USER, "東京都千代田区丸の内1-1-1")
    bot_app.text(USER, "その他")
    bot_app.text(USER, "完了")
    assert step_of(bot_app, USER) == "qualification_other"
    texts = bot_app.text(USER, "戻る")
    assert step_of(bot_app, USER) == "qualifications" and "選択中：その他公的資格" in texts[-1]


def test_lost_session_resumes_at_the_first_unanswered_sub_step(bot_app):
    walk_to(bot_app, "branch")
    bot_app.rt.gate.delete_session(USER)
    texts = bot_app.text(USER, "新宿")
    # The position is recomputed from the draft: bank chosen, no branch yet.
    assert step_of(bot_app, USER) == "branch_confirm" and "新宿支店" in texts[-1]


def test_three_bad_answers_offer_help_and_pause(bot_app):
    walk_to(bot_app, "account_number")
    bot_app.text(USER, "abc")
    bot_app.text(USER, "12345678")
    texts = bot_app.text(USER, "0000000")
    assert "うまくいかない" in texts[0]
    assert bot_app.last_quick_reply(USER) == ["ヘルプ", "キャンセル"]
    texts = bot_app.text(USER, "ヘルプ")
    assert "前に0を補って" in texts[0] and asked(texts, "口座番号")


# --- robustness ------------------------------------------------------------------------------

# The hypothesis suite (test_no_500) fuzzes the first steps; these hit the parsers added here.
ODD_TEXTS = ["🙂", "x" * 300, "1 2 3 4 5 6 7 8 9 10 11 12 13 14"]


def test_odd_inputs_at_every_new_question_are_answered_without_error(bot_app):
    walk_to(bot_app, "birthdate")
    seen = []
    for _ in range(40):
        state = step_of(bot_app, USER)
        if state == "photo_face":
            break
        if state not in seen:
            seen.append(state)
            replies = [bot_app.text(USER, t) for t in ODD_TEXTS]
            replies.append(bot_app.say(USER, "postback", data="dp=birthdate", params={"date": "abcd"}))
            for texts in replies:
                assert texts and not any("エラーが発生しました" in t for t in texts), (state, texts)
            if step_of(bot_app, USER) != state:
                continue  # an odd input happened to be an answer; go on from where it led
        for answer in ANSWERS[step_of(bot_app, USER)]:
            bot_app.text(USER, answer)
    assert step_of(bot_app, USER) == "photo_face"
    assert {"birthdate", "qualifications", "requirements", "areas", "bank", "holder"} <= set(seen)
