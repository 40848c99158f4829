"""Dispatch requests: the reviewer's form, the expert's answer, the free-dispatch limit, cancel and reschedule."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.dispatch.businesses import corporate_number_ok
from storage.models import AuditLog, Business, Dispatch, FlowDraft
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
    secretariat,
)
from tests.helpers import TOKYO


def tomorrow_10() -> str:
    day = datetime.now(TOKYO).date() + timedelta(days=1)
    return f"{day.isoformat()}T10:00"


def setup(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "依頼商工会", REVIEWER)
    return inst, commissioned_expert(inst)


def request(bot_app, expert, business="株式会社テスト製作所", number="7000012050002") -> list[str]:
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, business)
    bot_app.text(REVIEWER, number)
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-1-1")
    texts = bot_app.text(REVIEWER, "1")
    assert f"No.{expert.id}" in texts[-1], texts
    bot_app.text(REVIEWER, f"No.{expert.id}")
    texts = bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    assert "この内容で依頼しますか" in texts[-1]
    return bot_app.say(REVIEWER, "postback", data="c=yes")


@pytest.mark.parametrize("number,ok", [("7000012050002", True), ("8000012050002", False), ("700001205000", False),
                                       ("abcdefghijklm", False)])
def test_corporate_number_check_digit(number, ok):
    assert corporate_number_ok(number) is ok


def test_request_accept_and_the_reviewer_is_told(bot_app):
    inst, expert = setup(bot_app)
    texts = request(bot_app, expert)
    assert "依頼しました" in texts[0]
    dispatch = Dispatch.get()
    assert (dispatch.status, dispatch.theme, dispatch.business.corporate_number) == ("requested", "経営戦略", "7000012050002")
    bot_app.drain()
    assert any("支援のご依頼" in t for t in bot_app.texts_since(EXPERT, 0))
    texts = bot_app.say(EXPERT, "postback", data=f"a=dsp_accept&id={dispatch.id}")
    assert "受諾しました" in texts[0]
    assert Dispatch.get_by_id(dispatch.id).status == "accepted"
    bot_app.drain()
    assert any("受諾しました" in t for t in bot_app.texts_since(REVIEWER, 0))
    assert "依頼商工会" not in bot_app.text(SEC, "/dispatches accepted")[0] and f"No.{dispatch.id}" in bot_app.text(SEC, "/dispatches")[0]


def test_decline_asks_a_reason_for_the_reviewer(bot_app):
    inst, expert = setup(bot_app)
    request(bot_app, expert)
    dispatch = Dispatch.get()
    bot_app.say(EXPERT, "postback", data=f"a=dsp_decline&id={dispatch.id}")
    texts = bot_app.text(EXPERT, "その日は別の支援が入っています")
    assert "担当者に伝えました" in texts[0]
    assert Dispatch.get_by_id(dispatch.id).status == "declined"
    bot_app.drain()
    assert any("その日は別の支援が入っています" in t for t in bot_app.texts_since(REVIEWER, 0))


def test_the_fourth_dispatch_for_a_business_is_refused_with_the_count(bot_app):
    inst, expert = setup(bot_app)
    first = dispatch_for(expert, REVIEWER, name="上限株式会社")
    for _ in range(2):
        dispatch_for(expert, REVIEWER, business=first.business)
    texts = bot_app.text(REVIEWER, "支援依頼")
    assert "上限株式会社" in texts[0]
    bot_app.text(REVIEWER, "1")  # the known business: no 法人番号 / pin questions
    bot_app.text(REVIEWER, "1")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    texts = bot_app.say(REVIEWER, "postback", data="c=yes")
    assert "上限（3回）" in texts[0] and "3回" in texts[0]
    assert Dispatch.select().count() == 3
    assert AuditLog.select().where(AuditLog.action == "dispatch.limit_refused").count() == 1
    assert "上限による依頼の拒否" in bot_app.text(SEC, "/dispatches")[0]


def test_an_existing_business_typed_by_name_is_the_same_business_and_its_limit_holds(bot_app):
    """Typing the name (the pick list shows 12 at most) must not create a second record with a fresh count."""
    inst, expert = setup(bot_app)
    first = dispatch_for(expert, REVIEWER, name="株式会社 上限")
    for _ in range(2):
        dispatch_for(expert, REVIEWER, business=first.business)
    bot_app.text(REVIEWER, "支援依頼")
    texts = bot_app.text(REVIEWER, "株式会社上限")  # without the space
    assert "「株式会社 上限」（登録済み）で依頼します" in texts[0] and "相談テーマ" in texts[-1]
    bot_app.text(REVIEWER, "1")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    texts = bot_app.say(REVIEWER, "postback", data="c=yes")
    assert "上限（3回）に達している" in texts[0]
    assert Business.select().count() == 1 and Dispatch.select().count() == 3


def test_a_cancelled_dispatch_does_not_count_toward_the_limit(bot_app):
    inst, expert = setup(bot_app)
    first = dispatch_for(expert, REVIEWER, name="取消株式会社")
    dispatches = [first] + [dispatch_for(expert, REVIEWER, business=first.business) for _ in range(2)]
    cards = bot_app.text(REVIEWER, "依頼一覧")
    assert "取消" in "".join(cards)
    bot_app.say(REVIEWER, "postback", data=f"a=dsp_cancel&id={dispatches[0].id}")
    bot_app.text(REVIEWER, "事業者の都合により延期")
    texts = bot_app.say(REVIEWER, "postback", data="c=yes")
    assert "取り消されました" in texts[0]
    bot_app.drain()
    assert any("事業者の都合により延期" in t for t in bot_app.texts_since(EXPERT, 0))
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "1")
    bot_app.text(REVIEWER, "1")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    texts = bot_app.say(REVIEWER, "postback", data="c=yes")
    assert "依頼しました" in texts[0]


def test_a_declined_request_does_not_count_toward_the_limit(bot_app):
    inst, expert = setup(bot_app)
    first = dispatch_for(expert, REVIEWER, name="辞退株式会社")
    dispatch_for(expert, REVIEWER, business=first.business)
    asked = dispatch_for(expert, REVIEWER, business=first.business, status="requested")
    bot_app.say(EXPERT, "postback", data=f"a=dsp_decline&id={asked.id}")
    assert "担当者に伝えました" in bot_app.text(EXPERT, "その日は別の支援が入っています")[0]
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "辞退株式会社")
    bot_app.text(REVIEWER, "1")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    assert "依頼しました" in bot_app.say(REVIEWER, "postback", data="c=yes")[0], "2 counted + 1 declined: room for 1"


def test_reschedule_before_check_in_tells_the_expert(bot_app):
    inst, expert = setup(bot_app)
    dispatch = dispatch_for(expert, REVIEWER)
    bot_app.say(REVIEWER, "postback", data=f"a=dsp_move&id={dispatch.id}")
    texts = bot_app.text(REVIEWER, "12/1 14:30" if datetime.now(TOKYO).month < 12 else "2/1 14:30")
    assert "変更します" in texts[0]
    bot_app.say(REVIEWER, "postback", data="c=yes")
    bot_app.drain()
    assert any("日時が変更されました" in t for t in bot_app.texts_since(EXPERT, 0))
    dispatch = Dispatch.get_by_id(dispatch.id)
    local = dispatch.scheduled_at.replace(tzinfo=timezone.utc).astimezone(TOKYO)
    assert (local.hour, local.minute) == (14, 30)
    # Another institution's reviewer cannot touch it; after check-in nobody can.
    institution_with_reviewer(bot_app, "別の依頼商工会", OTHER_REVIEWER)
    assert "権限がありません" in bot_app.say(OTHER_REVIEWER, "postback", data=f"a=dsp_cancel&id={dispatch.id}")[0]
    Dispatch.update(status="checked_in").execute()
    assert "変更できません" in bot_app.say(REVIEWER, "postback", data=f"a=dsp_cancel&id={dispatch.id}")[0]


def test_bad_answers_in_the_form_are_explained(bot_app):
    inst, expert = setup(bot_app)
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "新規株式会社")
    assert "チェックデジット" in bot_app.text(REVIEWER, "1234567890123")[0]
    bot_app.text(REVIEWER, "なし")
    assert "住所が見つかりませんでした" in bot_app.text(REVIEWER, "架空県どこか町")[0]  # addresses: tests/test_geocoding.py
    texts = bot_app.text(REVIEWER, "30.0, 140.0")  # typed coordinates from LINE for PC, at sea: no address there
    assert "都道府県を入力" in texts[-1]
    assert "都道府県名を入力してください" in bot_app.text(REVIEWER, "東京駅")[0]
    assert "相談テーマ" in bot_app.text(REVIEWER, "東京")[-1]
    bot_app.text(REVIEWER, "経営戦略")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    past = datetime.now(TOKYO) - timedelta(days=1)
    assert "過去の日時" in bot_app.text(REVIEWER, f"{past.year}/{past.month}/{past.day} 10:00")[0]
    assert "入力する" in bot_app.text(REVIEWER, "来週のどこか")[0]


def test_only_the_dispatchs_expert_can_answer(bot_app):
    inst, expert = setup(bot_app)
    dispatch = dispatch_for(expert, REVIEWER, status="requested")
    texts = bot_app.say("U" + "4" * 32, "postback", data=f"a=dsp_accept&id={dispatch.id}")
    assert "見つかりませんでした" in texts[0]
    assert Dispatch.get_by_id(dispatch.id).status == "requested"


@pytest.mark.parametrize("typed,expected", [
    ("12/1 10:00", (12, 1, 10, 0)),
    ("１２月１日　１０時３０分", (12, 1, 10, 30)),
    ("2027/2/1 9:05", (2, 1, 9, 5)),
    ("12月1日(火) 14時", (12, 1, 14, 0)),
])
def test_typed_dates_and_times(typed, expected):
    from conversations.dispatch.schedule import parse_when
    from conversations.kit.context import Context, Input
    from program import load_program

    program = load_program()
    ctx = Context(user=None, program=program, now=datetime(2026, 11, 26, 9, 0, tzinfo=program.timezone))
    chosen = parse_when(Input.from_text(typed), ctx)
    assert (chosen.month, chosen.day, chosen.hour, chosen.minute) == expected
    assert chosen.year == (2027 if expected[0] < 11 else 2026)


def test_redelivered_postback_changes_nothing_twice(bot_app):
    from simulator import events

    inst, expert = setup(bot_app)
    dispatch = dispatch_for(expert, REVIEWER, status="requested")
    tap = bot_app.event(EXPERT, "postback", data=f"a=dsp_accept&id={dispatch.id}")
    assert bot_app.post([tap]).status_code == 200
    bot_app.drain()
    told = len(bot_app.line.deliveries_for(REVIEWER))
    assert bot_app.post([events.redelivery(tap)]).status_code == 200
    bot_app.drain()
    assert len(bot_app.line.deliveries_for(REVIEWER)) == told
    assert AuditLog.select().where(AuditLog.action == "dispatch.accepted").count() == 1


def test_more_experts_than_a_quick_reply_holds_are_searched_by_name_or_number(bot_app):
    inst, expert = setup(bot_app)
    others = [commissioned_expert(inst, "U" + format(0xE000 + i, "032x"), family_name=f"佐藤{i}", kana_family="サトウ")
              for i in range(13)]
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "検索株式会社")
    bot_app.text(REVIEWER, "なし")
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-1-1")
    texts = bot_app.text(REVIEWER, "経営戦略")
    assert "14名います" in texts[-1] and bot_app.last_quick_reply(REVIEWER) == []
    texts = bot_app.text(REVIEWER, "佐藤1")  # 佐藤1, 佐藤10, 佐藤11, 佐藤12
    assert "4名が当てはまります" in texts[0]
    texts = bot_app.text(REVIEWER, f"No.{others[12].id}")
    assert "佐藤12" in texts[0] and "訪問日時" in texts[-1]


def lose_session(bot_app, user: str) -> None:
    """Redis loses the user's session (evicted, flushed, a failover): SQL still holds the answers."""
    bot_app.rt.redis.delete(bot_app.rt.keys.session(user))


def test_a_lost_session_keeps_the_request_typed_so_far(bot_app):
    inst, expert = setup(bot_app)
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社なくさない")
    bot_app.text(REVIEWER, "なし")
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-1-1")
    texts = bot_app.text(REVIEWER, "1")  # 経営戦略
    assert f"No.{expert.id}" in texts[-1]
    draft = FlowDraft.get()
    assert (draft.flow, draft.state, draft.data["business_name"], draft.data["theme"]) == (
        "dispatch_request", "expert", "株式会社なくさない", "経営戦略")

    lose_session(bot_app, REVIEWER)
    bot_app.text(REVIEWER, f"No.{expert.id}")  # answered where the reviewer was: nothing to retype
    texts = bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow_10()})
    assert "株式会社なくさない" in texts[-1] and "経営戦略" in texts[-1] and "この内容で依頼しますか" in texts[-1]
    assert "依頼しました" in bot_app.say(REVIEWER, "postback", data="c=yes")[0]
    dispatch = Dispatch.get()
    assert (dispatch.business.name, dispatch.business.latitude, dispatch.expert_id) == (
        "株式会社なくさない", BUSINESS_LAT, expert.id)
    assert FlowDraft.select().count() == 0, "sent: nothing left to resume"
    assert "事業者の名称" in bot_app.text(REVIEWER, "支援依頼")[0], "the next request starts empty"


def test_a_paused_request_resumes_with_its_answers_and_can_start_over(bot_app):
    setup(bot_app)
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社あとで")
    bot_app.text(REVIEWER, "キャンセル")
    lose_session(bot_app, REVIEWER)
    assert "審査待ち" in bot_app.text(REVIEWER, "審査待ち")[0], "paused: other words are not taken as answers"
    texts = bot_app.text(REVIEWER, "支援依頼")
    assert "再開します" in texts[0] and "法人番号" in texts[-1]
    lose_session(bot_app, REVIEWER)  # mid-question this time: the request's own name finds it
    texts = bot_app.text(REVIEWER, "支援依頼")
    assert "「支援依頼」の途中です" in texts[0] and "法人番号" in texts[-1]
    bot_app.text(REVIEWER, "最初から")
    texts = bot_app.text(REVIEWER, "はい")
    assert "最初から始めます" in texts[0] and "事業者の名称" in texts[-1]
    assert FlowDraft.select().count() == 0
    bot_app.text(REVIEWER, "株式会社つぎ")
    assert FlowDraft.get().data == {"business_id": None, "business_name": "株式会社つぎ"}
    bot_app.text(REVIEWER, "なし")
    texts = bot_app.text(REVIEWER, "キャンセル")
    assert "一時停止" in texts[0]


def test_a_request_left_for_another_task_is_offered_again_with_its_answers(bot_app):
    inst, expert = setup(bot_app)
    other = dispatch_for(expert, REVIEWER, name="株式会社べつ")
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社あとで")
    bot_app.text(REVIEWER, "キャンセル")
    # Another task replaces the request in the session: cancelling an upcoming dispatch.
    bot_app.say(REVIEWER, "postback", data=f"a=dsp_cancel&id={other.id}")
    bot_app.text(REVIEWER, "事業者の都合により延期")
    assert "専門家に伝えました" in bot_app.say(REVIEWER, "postback", data="c=yes")[0]
    texts = bot_app.text(REVIEWER, "支援依頼")
    assert "入力途中の支援依頼（株式会社あとで）の続きから再開します" in texts[0] and "法人番号" in texts[-1]
    assert "事業所の位置" in bot_app.text(REVIEWER, "なし")[-1], "resumed, not still paused"


def test_experts_are_offered_by_the_businesss_prefecture_and_the_theme(bot_app):
    """SPEC: the expert list is filtered by area and field — also for a business picked from before."""
    inst, tokyo_expert = setup(bot_app)  # covers 東京都 (tests.actors)
    osaka = commissioned_expert(inst, "U" + "0a" * 16)
    osaka.profile = {**(osaka.profile or {}), "areas": ["大阪府"]}
    osaka.save()
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社なにわ")
    bot_app.text(REVIEWER, "なし")
    assert "大阪府大阪市北区" in bot_app.text(REVIEWER, "34.702485, 135.495951")[0]  # its prefecture looked up
    texts = bot_app.text(REVIEWER, "1")  # 経営戦略
    assert f"No.{osaka.id}" in texts[-1] and f"No.{tokyo_expert.id}" not in texts[-1]
    bot_app.text(REVIEWER, "キャンセル")

    known = dispatch_for(tokyo_expert, REVIEWER, name="株式会社まるのうち")  # its record's address: 東京都…
    bot_app.text(REVIEWER, "最初から")
    bot_app.text(REVIEWER, "はい")
    bot_app.text(REVIEWER, "株式会社まるのうち")
    texts = bot_app.text(REVIEWER, "1")
    assert f"No.{tokyo_expert.id}" in texts[-1] and f"No.{osaka.id}" not in texts[-1], known
