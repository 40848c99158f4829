"""Answers that explain (issue 12): a refused answer says what exactly is wrong and by how much,
a step taken back shows what was typed before, a tap says briefly what is chosen.

Every scenario talks through signed webhooks, as a user on a phone would.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from domain.fee_totals import refill_fee_totals
from storage.models import Attendance, Business, FlowDraft, Report, utcnow
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    state_of,
    step_of,
)
from tests.helpers import TOKYO
from tests.test_profile_steps import USER as MS_USER
from tests.test_profile_steps import walk_to

# -- 1. the request form: 法人番号 and the business's name -------------------------------------

def _reviewer_at_the_business_question(bot_app) -> None:
    secretariat(bot_app)
    commissioned_expert(institution_with_reviewer(bot_app, "説明商工会", REVIEWER))
    assert "事業者の名称" in bot_app.text(REVIEWER, "支援依頼")[0]


def test_a_corporate_number_with_a_wrong_check_digit_is_called_that(bot_app):
    _reviewer_at_the_business_question(bot_app)
    bot_app.text(REVIEWER, "株式会社チェック")
    texts = bot_app.text(REVIEWER, "8000012050002")  # 7000012050002 with its first digit mistyped
    assert texts[0] == "法人番号のチェックデジット（先頭の1桁）が正しくありません。番号をお確かめください。ない場合は「なし」。"
    assert "法人番号（13桁）を入力してください" in texts[-1] and step_of(bot_app, REVIEWER) == "corporate_number"
    texts = bot_app.text(REVIEWER, "８０００－０１２０－５０００２")  # full width and hyphens: the same number
    assert "チェックデジット" in texts[0]
    for malformed in ("700001205000", "70000120500021", "abcdefghijklm"):  # not 13 digits: the format is the news
        texts = bot_app.text(REVIEWER, malformed)
        assert texts[0].startswith("法人番号は13桁の数字です"), (malformed, texts)
    assert "事業所の位置" in bot_app.text(REVIEWER, "7000012050002")[-1]
    assert step_of(bot_app, REVIEWER) == "location"


def test_a_business_name_needs_letters_and_says_how_far_over_the_limit_it_is(bot_app):
    _reviewer_at_the_business_question(bot_app)
    for only_symbols in ("🏢🏢🏢", "！？・＠"):
        texts = bot_app.text(REVIEWER, only_symbols)
        assert texts[0] == "事業者の名称を文字で入力してください（記号や絵文字だけの名称は登録できません）。", texts
        assert "支援する事業者の名称" in texts[-1] and step_of(bot_app, REVIEWER) == "business"
    assert all("business_name" not in d.data for d in FlowDraft.select())  # nothing refused was kept
    # Letters with a symbol or an emoji, or latin letters and digits, are names.
    assert "法人番号" in bot_app.text(REVIEWER, "🏢カフェ・ド・ABC 2号店")[-1]
    assert step_of(bot_app, REVIEWER) == "corporate_number"
    bot_app.text(REVIEWER, "戻る")
    texts = bot_app.text(REVIEWER, "株" * 120)
    assert texts[0] == "事業者の名称は100文字以内で入力してください（現在120文字、20文字オーバー）。"
    assert "支援する事業者の名称" in texts[-1] and step_of(bot_app, REVIEWER) == "business"
    assert bot_app.text(REVIEWER, "株")[0] == "事業者の名称は2〜100文字で入力してください。"  # too short: as before
    assert "法人番号" in bot_app.text(REVIEWER, "株" * 100)[-1]  # exactly the limit is fine
    assert not Business.select().exists()  # nothing written until 依頼する


# -- 2. /fees without a month ------------------------------------------------------------------

def test_fees_without_a_month_is_this_months_in_business_time(bot_app):
    secretariat(bot_app)
    expert = commissioned_expert(institution_with_reviewer(bot_app, "説明商工会", REVIEWER))
    for month, gross in (("2026-06", 5_280), ("2026-07", 7_920)):
        d = dispatch_for(expert, REVIEWER, when=datetime(int(month[:4]), int(month[5:]), 10, 1, 0), status="completed")
        Report.create(dispatch=d, status="accepted", minutes=60, gross_yen=gross, withholding_yen=0, travel_yen=0,
                      net_yen=gross, fee_month=month, submitted_at=utcnow(), accepted_at=utcnow())
    refill_fee_totals()  # the sums /fees reads, as the report machine keeps them
    # 1 July 00:30 in Tokyo is still 30 June in UTC: the month is the program's.
    july_first = datetime(2026, 7, 1, 0, 30, tzinfo=TOKYO)
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, clock=lambda: july_first)
    text = bot_app.text(SEC, "/fees")[0]
    assert text.startswith("謝金集計 2026年7月") and "合計：1件 謝金7,920円" in text, text
    assert "合計：1件 謝金5,280円" in bot_app.text(SEC, "/fees 2026-06")[0]  # a month typed is that month
    assert bot_app.text(SEC, "/fees 2026-13")[0].startswith("使い方：/fees [YYYY-MM]")
    assert "使い方" in bot_app.text(SEC, "/fees 七月")[0]


# -- 3. the report: 戻る shows the answer given, a text too long says by how much --------------------

def _expert_writing_a_report(bot_app) -> Report:
    secretariat(bot_app)
    expert = commissioned_expert(institution_with_reviewer(bot_app, "報告説明商工会", REVIEWER))
    start = datetime(2026, 6, 10, 1, 0)  # 10:00 in Tokyo, stored as UTC
    d = dispatch_for(expert, REVIEWER, when=start, status="completed")
    for kind, at in (("in", start), ("out", start + timedelta(minutes=130))):
        Attendance.create(dispatch=d, kind=kind, line_timestamp=at, received_at=at, latitude=BUSINESS_LAT,
                          longitude=BUSINESS_LNG, distance_m=10.0, event_id=f"{kind}-{d.id}")
    assert "【相談内容】" in bot_app.text(EXPERT, "報告書")[-1]
    return Report.get(Report.dispatch == d)


def test_back_in_the_report_shows_the_answer_given_before(bot_app):
    report = _expert_writing_a_report(bot_app)
    bot_app.text(EXPERT, "新商品の販路開拓について相談を受けた。")
    texts = bot_app.text(EXPERT, "戻る")
    assert texts[0] == "一つ前の質問に戻ります。" and state_of(bot_app, EXPERT) == ("report", "consultation")
    assert texts[-1] == "相談内容を5〜1000文字で入力してください。\n（前回の入力：新商品の販路開拓について相談を受けた。）"
    assert "【支援内容】" in bot_app.text(EXPERT, "新商品の販路開拓と価格について相談を受けた。")[-1]
    for answer in ("顧客分析とEC販売の計画づくりを支援した。", "営業が社長一人に集中している。",
                   "顧客管理表を社内で共有することを提案した。", "90", "1200"):
        bot_app.text(EXPERT, answer)
    assert state_of(bot_app, EXPERT) == ("report", "travel_route")
    texts = bot_app.text(EXPERT, "戻る")  # to 交通費: the amount given
    assert "（前回の入力：1,200円" in texts[-1] and state_of(bot_app, EXPERT) == ("report", "travel")
    assert "（前回の入力：1時間30分" in bot_app.text(EXPERT, "戻る")[-1]  # to 対面時間
    texts = bot_app.text(EXPERT, "戻る")  # to 今後の提案
    assert "（前回の入力：顧客管理表を社内で共有することを提案した。）" in texts[-1]
    report = Report.get_by_id(report.id)
    assert report.draft["consultation"] == "新商品の販路開拓と価格について相談を受けた。"  # the second answer replaced it


def test_a_report_text_over_the_limit_says_by_how_much_and_keeps_the_earlier_answer(bot_app):
    report = _expert_writing_a_report(bot_app)
    texts = bot_app.text(EXPERT, "相" * 1150)
    assert texts[0] == "相談内容は1,000文字以内で入力してください（現在1,150文字、150文字オーバー）。"
    assert texts[-1] == "相談内容を5〜1000文字で入力してください。"  # nothing given before: nothing to show
    assert "consultation" not in (Report.get_by_id(report.id).draft or {})
    bot_app.text(EXPERT, "新商品の販路開拓について相談を受けた。")
    bot_app.text(EXPERT, "戻る")
    texts = bot_app.text(EXPERT, "談" * 1001)  # one over: nothing half-saved, the earlier answer stays
    assert texts[0] == "相談内容は1,000文字以内で入力してください（現在1,001文字、1文字オーバー）。"
    assert "（前回の入力：新商品の販路開拓について相談を受けた。）" in texts[-1]
    assert Report.get_by_id(report.id).draft["consultation"] == "新商品の販路開拓について相談を受けた。"
    assert "【支援内容】" in bot_app.text(EXPERT, "相" * 1000)[-1]  # exactly the limit is fine
    for answer in ("顧客分析とEC販売の計画づくりを支援した。", "営業が社長一人に集中している。",
                   "顧客管理表を社内で共有することを提案した。", "90", "1200"):
        bot_app.text(EXPERT, answer)
    texts = bot_app.text(EXPERT, "駅" * 230)
    assert texts[0] == "経路は200文字以内で入力してください（現在230文字、30文字オーバー）。"
    assert "travel_route" not in Report.get_by_id(report.id).draft and state_of(bot_app, EXPERT) == ("report", "travel_route")


# -- 4. multi-select: a tap says what is chosen in one line; an error is one bubble -------------

def test_a_tap_in_a_multi_select_answers_with_one_line_and_the_buttons(bot_app):
    walk_to(bot_app, "expertise")
    texts = bot_app.text(MS_USER, "経営戦略")
    assert texts == ["選択中：経営戦略（1件）。続けて選ぶか「完了」"]
    assert "✓経営戦略" in bot_app.last_quick_reply(MS_USER) and bot_app.last_quick_reply(MS_USER)[-1] == "完了"
    fields = list(bot_app.rt.program.expertise)
    texts = bot_app.text(MS_USER, fields[1])
    assert texts == [f"選択中：経営戦略、{fields[1]}（2件）。続けて選ぶか「完了」"]
    assert bot_app.text(MS_USER, "経営戦略") == [f"選択中：{fields[1]}（1件）。続けて選ぶか「完了」"]  # off again
    assert bot_app.text(MS_USER, fields[1]) == ["選択中：（まだありません）。続けて選ぶか「完了」"]
    texts = bot_app.text(MS_USER, "ヘルプ")  # anything but a tap still asks the whole question
    assert "専門分野をほかにもあれば選び" in texts[-1] and "1. 　経営戦略" in texts[-1]
    bot_app.text(MS_USER, "1")
    texts = bot_app.text(MS_USER, "完了")
    assert "専門分野を「経営戦略」で保存しました" in texts[0] and step_of(bot_app, MS_USER) == "areas"
    texts = bot_app.text(MS_USER, "関東から選ぶ")  # opening a region shows its list
    assert "茨城県" in texts[-1]
    assert bot_app.text(MS_USER, "東京都") == ["選択中：東京都（1件）。続けて選ぶか「完了」"]
    assert bot_app.last_quick_reply(MS_USER)[-3:] == ["その地方すべて", "地方一覧", "完了"]
    assert "✓東京都" in bot_app.last_quick_reply(MS_USER)
    assert bot_app.text(MS_USER, "全国") == ["選択中：全国（47都道府県）。続けて選ぶか「完了」"]


def test_a_refused_multi_select_answer_is_one_bubble_with_the_question(bot_app):
    walk_to(bot_app, "qualifications")
    texts = bot_app.text(MS_USER, "完了")
    assert len(texts) == 1 and texts[0].startswith("資格を選んでから「完了」を押してください。")
    assert "保有資格をほかにもあれば選び" in texts[0] and "1. 　中小企業診断士" in texts[0]
    assert bot_app.last_quick_reply(MS_USER)[-2:] == ["なし", "完了"]
    texts = bot_app.text(MS_USER, "宇宙飛行士")
    assert len(texts) == 1 and texts[0].startswith("「宇宙飛行士」は保有資格の選択肢にありません。")
    assert "選択中：（まだありません）" in texts[0]
    texts = bot_app.text(MS_USER, "宇宙飛行士")  # the third in a row: the usual advice, as elsewhere
    assert "入力がうまくいかないようです" in texts[-1]
    assert bot_app.text(MS_USER, "税理士") == ["選択中：税理士（1件）。続けて選ぶか「完了」"]
    texts = bot_app.text(MS_USER, "宇宙飛行士")  # a tap in between starts the count again
    assert len(texts) == 1 and "選択肢にありません" in texts[0] and "入力がうまくいかない" not in texts[0]
    bot_app.text(MS_USER, "完了")
    assert step_of(bot_app, MS_USER) == "requirements"
    texts = bot_app.text(MS_USER, "(b)")
    assert texts == ["選択中：(b)（1件）。続けて選ぶか「完了」"]
    texts = bot_app.text(MS_USER, "(z)")
    assert len(texts) == 1 and "登録要件の選択肢にありません" in texts[0] and "選択中：(b)" in texts[0]
