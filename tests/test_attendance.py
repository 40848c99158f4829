"""Check-in / check-out (GPS): every step through signed webhooks, as LINE sends them."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from simulator.events import redelivery
from storage.models import Attendance, Dispatch, ExceptionReport, Outbox
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    near,
    pin_business_time,
    pushed_texts,
    say_at,
    secretariat,
    send_location,
    state_of,
)
from tests.helpers import TOKYO, hhmm, now_ms

OTHER_EXPERT = "U" + "e1" + "0" * 30


def tokyo_day_at(days: int, hour: int) -> datetime:
    """A Tokyo wall-clock time ``days`` from today, as stored (UTC, naive)."""
    day = datetime.now(TOKYO).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=TOKYO).astimezone(timezone.utc).replace(tzinfo=None)


def setup(bot_app, *, when: datetime | None = None):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "勤怠商工会", REVIEWER)
    expert = commissioned_expert(inst)
    return inst, expert, dispatch_for(expert, REVIEWER, when=when or tokyo_day_at(0, 10))


def test_checkin_40m_from_the_business_is_recorded_with_distance_and_line_timestamp(bot_app):
    _, _, dispatch = setup(bot_app)
    ts = now_ms(-0.5)  # sent half a minute ago (after the word 「チェックイン」), delivered now
    texts = say_at(bot_app, EXPERT, ts - 5000, text="チェックイン")
    assert f"派遣No.{dispatch.id}" in texts[0] and "300m以内" in texts[0]
    assert "位置情報を送る" in bot_app.last_quick_reply(EXPERT)
    assert state_of(bot_app, EXPERT) == ("checkin", "location")

    texts, event = send_location(bot_app, EXPERT, near(40), ts)
    assert "チェックインしました" in texts[0] and "事業所から40m" in texts[0] and f"時刻：{hhmm(ts)}" in texts[0]
    check = Attendance.get()
    assert check.kind == "in" and abs(check.distance_m - 40) < 0.5
    assert check.line_timestamp == datetime.fromtimestamp(ts / 1000, timezone.utc).replace(tzinfo=None)
    assert check.received_at >= check.line_timestamp
    assert (check.latitude, check.longitude) == near(40)
    assert not check.flagged and check.flags == [] and check.event_id == event["webhookEventId"]
    assert Dispatch.get_by_id(dispatch.id).status == "checked_in"
    assert state_of(bot_app, EXPERT) == (None, None)
    assert not any("要確認" in t for t in pushed_texts(bot_app, SEC))


def test_checkin_refused_beyond_radius_three_times_then_reason_exception_and_flag(bot_app):
    _, _, dispatch = setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    far = near(1200, 90)
    for left in (2, 1):
        texts, _ = send_location(bot_app, EXPERT, far)
        assert "事業所から1,200m離れています" in texts[0] and f"あと{left}回" in texts[0]
        assert "位置情報を送る" in bot_app.last_quick_reply(EXPERT)
    assert not Attendance.select().exists() and Dispatch.get_by_id(dispatch.id).status == "accepted"
    texts, event = send_location(bot_app, EXPERT, far)
    assert "1,200m" in texts[0] and "理由を入力してください" in texts[-1]
    assert state_of(bot_app, EXPERT) == ("checkin", "reason")

    texts = bot_app.text(EXPERT, "事業所の登録地点が本社で、訪問先は工場のため")
    assert "チェックインしました" in texts[0] and "例外として記録" in texts[0]
    check = Attendance.get()
    assert check.flagged and check.flags[0] == "out_of_range" and check.event_id == event["webhookEventId"]
    assert abs(check.distance_m - 1200) < 1
    report = ExceptionReport.get()
    assert (report.kind, report.reason, report.distances) == ("in", "事業所の登録地点が本社で、訪問先は工場のため",
                                                              [1200, 1200, 1200])
    assert Dispatch.get_by_id(dispatch.id).status == "checked_in"
    notices = [t for t in pushed_texts(bot_app, SEC) if "要確認" in t]
    assert len(notices) == 1 and f"派遣No.{dispatch.id}" in notices[0] and "訪問先は工場" in notices[0]
    assert "1,200m / 1,200m / 1,200m" in notices[0]


def test_checkout_without_checkin_is_refused(bot_app):
    _, _, dispatch = setup(bot_app)
    texts = bot_app.text(EXPERT, "チェックアウト")
    assert "チェックアウトできません" in texts[0] and "チェックイン" in bot_app.last_quick_reply(EXPERT)
    assert state_of(bot_app, EXPERT) == (None, None)
    assert Dispatch.get_by_id(dispatch.id).status == "accepted" and not Attendance.select().exists()


def test_second_checkin_is_refused(bot_app):
    _, _, dispatch = setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    send_location(bot_app, EXPERT, near(40))
    texts = bot_app.text(EXPERT, "チェックイン")
    assert "すでにチェックイン済み" in texts[0] and f"派遣No.{dispatch.id}" in texts[0]
    assert state_of(bot_app, EXPERT) == (None, None) and Attendance.select().count() == 1


def test_another_expert_does_not_see_the_dispatch(bot_app):
    inst, _, dispatch = setup(bot_app)
    commissioned_expert(inst, OTHER_EXPERT)
    texts = bot_app.text(OTHER_EXPERT, "チェックイン")
    assert "本日チェックインできる派遣はありません" in texts[0] and f"No.{dispatch.id}" not in texts[0]
    assert "位置情報を受け取りました" in send_location(bot_app, OTHER_EXPERT, near(40))[0][0]
    assert not Attendance.select().exists() and Dispatch.get_by_id(dispatch.id).status == "accepted"


def test_dispatch_scheduled_tomorrow_cannot_be_checked_in_today(bot_app):
    _, _, dispatch = setup(bot_app, when=tokyo_day_at(1, 10))
    texts = bot_app.text(EXPERT, "チェックイン")
    assert "本日チェックインできる派遣はありません" in texts[0]
    assert "次の派遣予定" in texts[0] and f"派遣No.{dispatch.id}" in texts[0] and "10:00" in texts[0]
    assert state_of(bot_app, EXPERT) == (None, None) and Dispatch.get_by_id(dispatch.id).status == "accepted"


def test_pin_exactly_on_the_business_point_is_flagged(bot_app):
    _, _, dispatch = setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    texts, _ = send_location(bot_app, EXPERT, (BUSINESS_LAT, BUSINESS_LNG))
    assert "チェックインしました" in texts[0] and "事業所から0m" in texts[0]
    check = Attendance.get()
    assert check.flagged and check.flags == ["pin_on_business_point"]
    notices = [t for t in pushed_texts(bot_app, SEC) if "要確認" in t]
    assert len(notices) == 1 and "登録地点と完全に一致" in notices[0] and f"派遣No.{dispatch.id}" in notices[0]


def test_identical_checkin_and_checkout_points_are_flagged(bot_app):
    setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    send_location(bot_app, EXPERT, near(25, 200))
    bot_app.text(EXPERT, "チェックアウト")
    texts, _ = send_location(bot_app, EXPERT, near(25, 200))
    assert "チェックアウトしました" in texts[0]
    check_in, check_out = Attendance.get(kind="in"), Attendance.get(kind="out")
    assert not check_in.flagged
    assert check_out.flagged and check_out.flags == ["same_point_in_out"]
    notices = [t for t in pushed_texts(bot_app, SEC) if "要確認" in t]
    assert len(notices) == 1 and "チェックアウト" in notices[0] and "位置が同一" in notices[0]


def test_checkout_states_elapsed_time_from_the_line_timestamps(bot_app):
    noon = pin_business_time(bot_app)  # "picked 2 h 10 min ago" stays on the dispatch's day after midnight too
    _, _, dispatch = setup(bot_app)
    ts_in = int((noon - timedelta(minutes=130)).timestamp() * 1000)  # picked at 10:20, delivered only at 12:30
    say_at(bot_app, EXPERT, ts_in - 5000, text="チェックイン")
    send_location(bot_app, EXPERT, near(40), ts_in)
    assert Attendance.get(kind="in").flags == ["late_event"], "a check long after its event time is flagged"

    ts_out = ts_in + 130 * 60 * 1000 + 30_000
    texts = say_at(bot_app, EXPERT, ts_out - 5000, text="チェックアウト")
    assert f"派遣No.{dispatch.id}" in texts[0] and "位置情報を送る" in bot_app.last_quick_reply(EXPERT)
    texts, _ = send_location(bot_app, EXPERT, near(60, 180), ts_out)
    assert "チェックアウトしました" in texts[0] and "事業所から60m" in texts[0]
    assert f"時刻：{hhmm(ts_out)}" in texts[0] and f"経過時間：2時間10分（130分）／チェックイン {hhmm(ts_in)}" in texts[0]
    check_out = Attendance.get(kind="out")
    assert not check_out.flagged
    assert Dispatch.get_by_id(dispatch.id).status == "completed"
    assert any("支援実施報告書の入力を始めます" in t for t in texts[1:]), "check-out opens the report"
    assert state_of(bot_app, EXPERT)[0] == "report"


def test_outdated_conditions_ask_for_consent_before_checkin(bot_app):
    _, expert, dispatch = setup(bot_app)
    expert.conditions_version = "2025-04"
    expert.save()
    texts = bot_app.text(EXPERT, "チェックイン")
    assert "同意をお願いします" in texts[0] and any("【委嘱条件】" in t for t in texts)
    assert state_of(bot_app, EXPERT) == (None, None)
    texts = bot_app.say(EXPERT, "postback", data="a=consent&ans=yes&v=2026-04")
    assert "同意を記録しました" in texts[0]
    texts = bot_app.text(EXPERT, "チェックイン")
    assert f"派遣No.{dispatch.id}" in texts[0] and state_of(bot_app, EXPERT) == ("checkin", "location")


def test_redelivered_location_changes_nothing_twice(bot_app):
    _, _, dispatch = setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    texts, event = send_location(bot_app, EXPERT, (BUSINESS_LAT, BUSINESS_LNG))  # flagged: one push
    assert "チェックインしました" in texts[0]
    bot_app.drain()
    outbox, seq = Outbox.select().count(), bot_app._seq(EXPERT)
    response = bot_app.post([redelivery(event)])
    assert response.status_code == 200
    bot_app.drain()
    assert Attendance.select().count() == 1 and Outbox.select().count() == outbox
    assert bot_app.texts_since(EXPERT, seq) == []
    assert Dispatch.get_by_id(dispatch.id).status == "checked_in"


def test_typed_text_at_the_location_step_explains_how_to_send_it(bot_app):
    setup(bot_app)
    bot_app.text(EXPERT, "チェックイン")
    texts = bot_app.text(EXPERT, "丸の内1-1-1にいます")
    assert "スマートフォンのLINEアプリ" in texts[0] and "位置情報を送る" in bot_app.last_quick_reply(EXPERT)
    assert state_of(bot_app, EXPERT) == ("checkin", "location") and not Attendance.select().exists()


def test_several_dispatches_today_are_chosen_by_number(bot_app):
    _, expert, first = setup(bot_app)
    second = dispatch_for(expert, REVIEWER, when=tokyo_day_at(0, 14), name="有限会社サンプル商店")
    texts = bot_app.text(EXPERT, "チェックイン")
    assert f"1. 派遣No.{first.id}" in texts[0] and f"2. 派遣No.{second.id}" in texts[0]
    assert any(label.startswith(f"No.{second.id} 14:00") for label in bot_app.last_quick_reply(EXPERT))
    texts = bot_app.text(EXPERT, "2")
    assert f"派遣No.{second.id} 有限会社サンプル商店" in texts[0] and state_of(bot_app, EXPERT) == ("checkin", "location")
    send_location(bot_app, EXPERT, near(40))
    assert Dispatch.get_by_id(second.id).status == "checked_in" and Dispatch.get_by_id(first.id).status == "accepted"


def test_a_check_in_sent_before_midnight_counts_for_that_day_when_processed_after_it(bot_app):
    """LINE redelivers, the worker runs a deferred event: what the expert sent at 23:58 on the
    dispatch's day is judged on that day, by LINE's timestamp, not by when we got to it."""
    after_midnight = pin_business_time(bot_app, hour=0, minute=4)
    evening = after_midnight - timedelta(minutes=6)  # 23:58 the day before
    _, _, dispatch = setup(bot_app, when=tokyo_day_at(-1, 21))
    event = bot_app.event(EXPERT, "text", text="チェックイン")
    event["timestamp"] = int(evening.timestamp() * 1000)
    seen = bot_app._seq(EXPERT)
    assert bot_app.post([event]).status_code == 200
    assert f"派遣No.{dispatch.id}" in bot_app.texts_since(EXPERT, seen)[0]
    texts, _ = send_location(bot_app, EXPERT, near(40), int((evening.timestamp() + 30) * 1000))
    assert "チェックインしました" in texts[0]
    assert Attendance.get(kind="in").flags == [], "minutes late, not a late event"


def test_a_check_in_sent_the_day_after_does_not_offer_the_days_dispatch(bot_app):
    _, _, dispatch = setup(bot_app, when=tokyo_day_at(-1, 21))
    texts = bot_app.text(EXPERT, "チェックイン")  # LINE's timestamp: now, a day after the dispatch
    assert f"派遣No.{dispatch.id}" not in texts[0] and state_of(bot_app, EXPERT) == (None, None), texts


def test_misses_and_the_check_in_day_come_from_program_toml(bot_app):
    """[dispatch] geofence_max_misses and checkin_tolerance_days are rules, set in program.toml."""
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, geofence_max_misses=1, checkin_tolerance_days=1)
    _, _, dispatch = setup(bot_app, when=tokyo_day_at(-1, 10))  # yesterday: allowed with a tolerance of 1 day
    assert f"派遣No.{dispatch.id}" in bot_app.text(EXPERT, "チェックイン")[0]
    texts, _ = send_location(bot_app, EXPERT, near(1200, 90))
    assert "理由を入力してください" in texts[-1] and state_of(bot_app, EXPERT) == ("checkin", "reason"), "one miss is enough"


def test_program_toml_refuses_a_zero_miss_limit(tmp_path):
    from program import DEFAULT_PATH, ProgramConfigError, load_program

    text = DEFAULT_PATH.read_text(encoding="utf-8").replace("geofence_max_misses = 3", "geofence_max_misses = 0")
    (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProgramConfigError, match="dispatch.geofence_max_misses"):
        load_program(str(tmp_path / "p.toml"))
