"""Answers that explain (issue 12, part 3): why no expert fits a request, a check-in far from the
appointment told and flagged, report cards with the scheduled and actual times, old report buttons
answered from the present state, photos shown as images, cards that say why they came, and 依頼一覧
as a carousel with 取消 last.

Every scenario talks through signed webhooks; what a card looks like is read from the Flex JSON the
fake LINE platform received.
"""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from storage.models import Attendance, Dispatch, Expert, Report, utcnow
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    jpeg,
    near,
    secretariat,
    send_location,
    state_of,
    step_of,
    submitted_application,
    tap,
)
from tests.helpers import TOKYO

SATO = "U" + "e2" + "0" * 30
SUZUKI = "U" + "e3" + "0" * 30
TANAKA = "U" + "e4" + "0" * 30
OTHER_REVIEWER = "U" + "2ee" + "0" * 29


def covering(expert: Expert, areas: list[str], fields: list[str] | None = None) -> Expert:
    """The expert's profile in force covers these prefectures (and fields): the plain rows follow."""
    expert.profile = {**(expert.profile or {}), "areas": areas, **({"expertise": fields} if fields else {})}
    expert.save()
    return expert


def flex_messages(bot_app, user: str) -> list[dict[str, Any]]:
    """Every Flex message the platform delivered to ``user`` (replies and pushes), as LINE got it."""
    bot_app.drain()
    return [m for d in bot_app.line.deliveries_for(user) for m in d["messages"] if m.get("type") == "flex"]


def components(node: Any, kind: str) -> list[dict[str, Any]]:
    """All components of one type (``image``, ``button``, ``text``…) in a Flex JSON tree, in order."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for value in node.values():
            found += components(value, kind)
    elif isinstance(node, list):
        for value in node:
            found += components(value, kind)
    return found


def header_first_line(message: dict[str, Any]) -> str:
    bubble = message["contents"]
    bubble = bubble["contents"][0] if bubble["type"] == "carousel" else bubble
    return components(bubble["header"], "text")[0]["text"]


# -- 1. no expert fits: which condition excluded whom ------------------------------------------------

def _at_the_expert_step(bot_app, theme: str = "1") -> list[str]:
    """The reviewer asks for a visit to a business in 東京都, theme by its number (1 = 経営戦略)."""
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社説明")
    bot_app.text(REVIEWER, "なし")
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-1-1")
    assert step_of(bot_app, REVIEWER) == "theme", state_of(bot_app, REVIEWER)
    return bot_app.text(REVIEWER, theme)


def test_no_expert_for_the_area_names_who_covers_what_and_the_way_forward(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "説明商工会", REVIEWER)
    covering(commissioned_expert(inst), ["北海道"])
    covering(commissioned_expert(inst, SATO, family_name="佐藤", given_name="花子", kana_family="サトウ",
                                 kana_given="ハナコ"), ["大阪府", "京都府"])
    texts = _at_the_expert_step(bot_app)
    assert texts[-1] == ("東京都に対応できる専門家がいません（山田　太郎さん：北海道、佐藤　花子さん：京都府、大阪府）。\n"
                         "「戻る」で相談テーマを変えるか、対応できる専門家がいない場合は中小企業119 事務局にご相談ください。")
    assert step_of(bot_app, REVIEWER) == "expert" and bot_app.last_quick_reply(REVIEWER) == ["戻る"]

    # The name typed is found, and why it cannot take this request is said.
    texts = bot_app.text(REVIEWER, "山田")
    first = [e for e in Expert.select() if e.family_name == "山田"][0]  # names are sealed: read in Python
    assert texts[0] == f"「山田」さん（山田　太郎さん・No.{first.id}）は見つかりましたが、東京都は対応地域外です（北海道）。"
    texts = bot_app.text(REVIEWER, "さとう")  # the フリガナ in hiragana finds her too
    assert texts[0].startswith("「さとう」さん（佐藤　花子さん") and "東京都は対応地域外です（京都府、大阪府）" in texts[0]
    texts = bot_app.text(REVIEWER, "鈴木")
    assert texts[0].startswith("「鈴木」さんに当てはまる委嘱済みの専門家は見つかりませんでした。")
    assert step_of(bot_app, REVIEWER) == "expert"


def test_no_expert_for_the_theme_says_the_field_differs_and_caps_the_names(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "分野商工会", REVIEWER)
    commissioned_expert(inst)  # 東京都 / 経営戦略
    for n, user in enumerate((SATO, SUZUKI, TANAKA)):
        covering(commissioned_expert(inst, user, family_name=f"佐藤{n}", kana_family="サトウ"), ["北海道"])
    texts = _at_the_expert_step(bot_app, "2")  # 事業承継: no one covers it
    text = texts[-1]
    assert text.startswith("東京都の「事業承継」に対応できる専門家がいません（山田　太郎さん：対応分野が異なります、"), text
    assert "佐藤0　太郎さん：対応地域（北海道）・分野が異なります" in text and " ほか1名）。" in text
    assert "中小企業119 事務局にご相談ください" in text
    # A number typed: found, and both conditions told.
    sato = [e for e in Expert.select() if e.family_name == "佐藤2"][0]
    texts = bot_app.text(REVIEWER, f"No.{sato.id}")
    assert texts[0] == (f"No.{sato.id}（佐藤2　太郎さん・No.{sato.id}）は見つかりましたが、東京都は対応地域外です（北海道）、"
                        "「事業承継」は対応分野外です（経営戦略）。")


def test_a_name_search_tells_an_application_not_yet_commissioned_only_to_its_institution(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "審査中商工会", REVIEWER)
    other = institution_with_reviewer(bot_app, "他所商工会", OTHER_REVIEWER)
    commissioned_expert(inst)
    pending = submitted_application(inst, SATO, family_name="高橋", kana_family="タカハシ")
    submitted_application(other, SUZUKI, family_name="伊藤", kana_family="イトウ")
    _at_the_expert_step(bot_app)
    texts = bot_app.text(REVIEWER, "高橋")
    assert texts[0] == (f"「高橋」さん（高橋　太郎さん・申請No.{pending.id}）はまだ委嘱されていないため、依頼できません"
                        "（支援機関の審査待ち）。"), texts
    texts = bot_app.text(REVIEWER, "伊藤")  # another institution's applicant: as if no such name
    assert texts[0].startswith("「伊藤」さんに当てはまる委嘱済みの専門家は見つかりませんでした。")
    assert "No." in texts[-1]  # the question again, with the experts who fit


# -- 2. a check-in far from the appointment: told, and 要確認 on the report card ---------------------

def _expert_with_a_dispatch_at(bot_app, when: datetime) -> Dispatch:
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "時刻商工会", REVIEWER)
    # A day either side: the scenario is about minutes, whatever hour the suite runs at.
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, checkin_tolerance_days=1)
    return dispatch_for(commissioned_expert(inst), REVIEWER, when=when)


def _check_in_now(bot_app) -> list[str]:
    bot_app.text(EXPERT, "チェックイン")
    texts, _ = send_location(bot_app, EXPERT, near(30))
    return texts


def _stored(aware: datetime) -> datetime:
    return aware.astimezone(timezone.utc).replace(tzinfo=None)


def test_an_early_check_in_is_told_and_flagged_on_the_report_card(bot_app):
    now = datetime.now(TOKYO).replace(second=0, microsecond=0)
    d = _expert_with_a_dispatch_at(bot_app, _stored(now + timedelta(minutes=76)))
    texts = _check_in_now(bot_app)
    planned = (now + timedelta(minutes=76)).strftime("%H:%M")
    assert "チェックインしました" in texts[0]
    assert f"予定時刻（{planned}）より7" in texts[0] and "分早いチェックインです。事務局・支援機関で確認します。" in texts[0]
    assert Dispatch.get_by_id(d.id).status == "checked_in"
    report = Report.create(dispatch=d, status="submitted", minutes=60, gross_yen=5280, withholding_yen=0,
                           travel_yen=0, net_yen=5280, fee_month="2026-06", submitted_at=utcnow())
    card = tap(bot_app, REVIEWER, f"a=rep_detail&id={report.id}")
    assert "【要確認】" in card[0] and "早いチェックイン" in card[0]  # the full text
    assert "【要確認】予定時刻" in card[-1]  # and the card (its alt text), for the reviewer…
    texts = bot_app.text(SEC, f"/reports {report.id}")
    assert "早いチェックイン" in texts[-1]  # …and the secretariat
    body = json.dumps(flex_messages(bot_app, SEC)[-1], ensure_ascii=False)
    assert "【要確認】チェックイン・アウト" in body and "早いチェックイン" in body


def test_a_late_check_in_is_told_and_one_on_time_is_not(bot_app):
    now = datetime.now(TOKYO).replace(second=0, microsecond=0)
    d = _expert_with_a_dispatch_at(bot_app, _stored(now - timedelta(minutes=90)))
    texts = _check_in_now(bot_app)
    assert f"予定時刻（{(now - timedelta(minutes=90)):%H:%M}）より9" in texts[0] and "分遅いチェックインです。" in texts[0]
    assert "要確認" in tap(bot_app, REVIEWER, f"a=rep_detail&id={Report.create(dispatch=d).id}")[0]
    # Within the limit (30 minutes early): nothing said, nothing flagged.
    other = dispatch_for(d.expert, REVIEWER, when=_stored(now + timedelta(minutes=30)))
    Dispatch.update(status="completed").where(Dispatch.id == d.id).execute()
    texts = _check_in_now(bot_app)
    assert "チェックインしました" in texts[0] and f"派遣No.{other.id}" in texts[0] and "予定時刻" not in texts[0]


def test_the_early_late_limit_is_program_toml_s(bot_app):
    now = datetime.now(TOKYO).replace(second=0, microsecond=0)
    _expert_with_a_dispatch_at(bot_app, _stored(now + timedelta(minutes=40)))
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, checkin_early_late_minutes=30)
    texts = _check_in_now(bot_app)
    assert re.search(r"より(39|40)分早いチェックインです", texts[0]), texts  # 40 minutes early, beyond a 30-minute limit


# -- 3. every report card shows the scheduled and the actual times ----------------------------------

def _report_with_checks(bot_app, status: str = "submitted") -> Report:
    secretariat(bot_app)
    expert = commissioned_expert(institution_with_reviewer(bot_app, "報告時刻商工会", REVIEWER))
    start = datetime(2026, 6, 10, 1, 0)  # 10:00 in Tokyo
    d = dispatch_for(expert, REVIEWER, when=start, status="completed")
    for kind, at in (("in", start + timedelta(minutes=5)), ("out", start + timedelta(minutes=100))):
        Attendance.create(dispatch=d, kind=kind, line_timestamp=at, received_at=at, latitude=BUSINESS_LAT,
                          longitude=BUSINESS_LNG, distance_m=10.0, event_id=f"{kind}-{d.id}")
    return Report.create(dispatch=d, status=status, minutes=90, gross_yen=7920, withholding_yen=0, travel_yen=0,
                         net_yen=7920, fee_month="2026-06", submitted_at=utcnow(),
                         draft={"consultation": "販路開拓の相談", "support": "計画づくりを支援"})


def test_report_cards_show_the_scheduled_and_actual_times_beside_the_duration(bot_app):
    report = _report_with_checks(bot_app)
    times = "予定 10:00〜 / 実績 10:05〜11:40（1時間35分）"
    texts = tap(bot_app, REVIEWER, f"a=rep_detail&id={report.id}")
    assert f"時刻：{times}" in texts[0] and times in texts[-1]
    card = flex_messages(bot_app, REVIEWER)[-1]
    assert times in [t["text"] for t in components(card, "text")]
    assert "要確認" not in json.dumps(card, ensure_ascii=False)  # on time: nothing to check
    listing = bot_app.text(SEC, "/reports")[0]
    assert f"報告書No.{report.id}" in listing and times in listing


# -- 4. old report buttons: the present status at once -----------------------------------------------

def test_a_decision_on_a_decided_report_is_answered_with_its_status_at_once(bot_app):
    report = _report_with_checks(bot_app)
    tap(bot_app, SEC, f"a=rep_accept&id={report.id}")
    assert tap(bot_app, SEC, "c=yes") == [f"報告書No.{report.id}（山田　太郎さん）を受理しました。"]
    assert Report.get_by_id(report.id).status == "accepted"
    for action in ("rep_accept", "rep_return"):
        texts = tap(bot_app, REVIEWER, f"a={action}&id={report.id}")
        assert len(texts) == 1 and texts[0].startswith(f"報告書No.{report.id} はすでに受理済みのため、"), texts
        assert "（事務局・" in texts[0] and "よろしいですか" not in texts[0]
        assert state_of(bot_app, REVIEWER) == (None, None)


def test_a_report_decided_while_the_return_reason_is_typed_says_so_before_any_confirmation(bot_app):
    report = _report_with_checks(bot_app)
    assert "差し戻す理由" in tap(bot_app, REVIEWER, f"a=rep_return&id={report.id}")[0]
    tap(bot_app, SEC, f"a=rep_accept&id={report.id}")
    tap(bot_app, SEC, "c=yes")
    texts = bot_app.text(REVIEWER, "写真が足りません。追加してください。")
    assert len(texts) == 1 and "はすでに受理済みのため、差し戻せません" in texts[0], texts
    assert Report.get_by_id(report.id).status == "accepted" and state_of(bot_app, REVIEWER) == (None, None)


# -- 5. photos as small images; cards that say why they came ------------------------------------------

def test_the_application_detail_shows_the_photos_as_images_with_signed_links(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "写真商工会", REVIEWER)
    photos = {key: bot_app.rt.files.put(jpeg(color), "image/jpeg")
              for key, color in (("face", "navy"), ("id_doc", "olive"), ("qualification", "teal"))}
    expert = submitted_application(inst, photos=photos, qualifications=["中小企業診断士"])
    texts = tap(bot_app, REVIEWER, f"a=detail&id={expert.id}")
    assert "（写真：顔写真・本人確認書類・資格証明書）" in texts[0]
    card = flex_messages(bot_app, REVIEWER)[-1]
    images = components(card, "image")
    assert len(images) == 3 and all("/files/" in i["url"] for i in images)
    assert [i["action"]["label"] for i in images] == ["顔写真", "本人確認書類", "資格証明書"]
    assert all(i["action"]["uri"] == i["url"] for i in images)  # a tap opens it full size
    assert not any(photos["face"][:6] in t["text"] for t in components(card, "text"))  # no code shown
    response = bot_app_get(bot_app, images[0]["url"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"


def bot_app_get(bot_app, url: str):
    """Open a signed link against the running bot (its public base URL is a placeholder in tests)."""
    import requests

    path = url.split("/files/", 1)[1]
    return requests.get(f"{bot_app.url}/files/{path}", timeout=5)


def test_cards_pushed_to_the_secretariat_start_with_why_they_came(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "理由商工会", REVIEWER)
    expert = submitted_application(inst, qualifications=["中小企業診断士"])
    tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    tap(bot_app, REVIEWER, "c=yes")
    card = flex_messages(bot_app, SEC)[-1]
    assert header_first_line(card) == "支援機関が承認しました：事務局の承認待ちです"
    assert card["altText"].startswith("支援機関が承認しました：事務局の承認待ちです｜申請No.")
    labels = [b["action"]["label"] for b in components(card, "button")]
    assert labels == ["詳細", "承認", "差し戻し", "却下"]  # the secretariat's decisions, nothing else

    # A report sent: the card for the reviewer and the secretariat says so first.
    report = _report_for(expert)
    bot_app.text(SEC, "/reports")  # nothing pushed by a listing
    card = _submitted_report_card(bot_app, report)
    assert header_first_line(card) == "報告書が提出されました：受理または差し戻しをお願いします"
    assert [b["action"]["label"] for b in components(card, "button")] == ["詳細", "受理", "差し戻し"]


def _report_for(expert: Expert) -> Report:
    expert = Expert.get_by_id(expert.id)
    expert.status = "commissioned"
    expert.profile = dict(expert.draft)
    expert.conditions_version = "2026-04"
    expert.save()
    start = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=3)
    d = dispatch_for(expert, REVIEWER, when=start, status="completed")
    for kind, at in (("in", start), ("out", start + timedelta(minutes=90))):
        Attendance.create(dispatch=d, kind=kind, line_timestamp=at, received_at=at, latitude=BUSINESS_LAT,
                          longitude=BUSINESS_LNG, distance_m=10.0, event_id=f"{kind}-{d.id}")
    return Report.create(dispatch=d, status="draft", draft={
        "consultation": "新商品の販路開拓について相談を受けた。", "support": "顧客分析とEC販売の計画づくりを支援した。",
        "issues": "営業が社長一人に集中している。", "proposals": "顧客管理表を社内で共有することを提案した。",
        "minutes": 90, "travel_yen": 0, "travel_route": "", "photos": [], "photos_done": True})


def _submitted_report_card(bot_app, report: Report) -> dict[str, Any]:
    texts = bot_app.text(EXPERT, "報告書")
    if "送信" not in "".join(texts):  # the flow asks what is missing; the draft is complete: go to the summary
        texts = bot_app.text(EXPERT, "続きから")
    tap(bot_app, EXPERT, "p=submit")
    assert Report.get_by_id(report.id).status == "submitted", texts
    return [m for m in flex_messages(bot_app, SEC) if m["altText"].startswith("報告書が提出されました")][-1]


# -- 6. 依頼一覧: a carousel, 取消 last ------------------------------------------------------------------

def test_the_list_of_requests_is_a_carousel_with_cancel_last(bot_app):
    secretariat(bot_app)
    expert = commissioned_expert(institution_with_reviewer(bot_app, "一覧商工会", REVIEWER))
    first = dispatch_for(expert, REVIEWER, name="株式会社一番", status="requested")
    second = dispatch_for(expert, REVIEWER, name="株式会社二番")
    texts = bot_app.text(REVIEWER, "依頼一覧")
    assert len(texts) == 1 and texts[0].startswith("チェックイン前の派遣（日時の早い順）：2件")
    assert f"派遣No.{first.id}（受諾待ち）［日時変更・取消］" in texts[0]
    message = flex_messages(bot_app, REVIEWER)[-1]
    assert message["contents"]["type"] == "carousel" and len(message["contents"]["contents"]) == 2
    for bubble, d in zip(message["contents"]["contents"], (first, second)):
        buttons = components(bubble["footer"], "button")
        assert [b["action"]["label"] for b in buttons] == ["日時変更", "取消"]
        assert buttons[0]["style"] == "primary" and buttons[-1]["style"] == "secondary"
        assert buttons[-1]["action"]["data"] == f"a=dsp_cancel&id={d.id}"
        assert d.business.name in json.dumps(bubble, ensure_ascii=False)
    # 取消 still works from the card.
    assert tap(bot_app, REVIEWER, f"a=dsp_cancel&id={first.id}")[0].startswith(f"派遣No.{first.id} を取り消す理由")
