"""The chat page keeps up with the bot, in a real browser (issue 12, part 4):
the rich menu swaps the moment the bot links another one (no reload, no
persona switch) and a switched-from persona's menu is never left tappable;
every time shown is Japan time even in a New York browser; the page sends
stickers and files (images still go as images); the location picker searches
an address through the simulator's GSI-compatible geocoder and sends the pin.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handlers import demo_seed as demo
from simulator import events
from simulator import page as sim_page
from simulator.contract import WEBHOOK_SPEC, schema_validator
from simulator.state import PlatformState
from tests.browser_support import (  # noqa: F401  (fixtures)
    PERSONAS,
    _sqlite_only,
    answered,
    as_persona,
    bot_rows,
    chromium_page,
    open_chat,
    page_fixture,
    sample_photo,
    say,
    shot,
    start_demo,
)
from tests.helpers import TOKYO

NEW_YORK = ZoneInfo("America/New_York")
APPLICANT_TILES = ["登録", "状況", "ヘルプ"]
REVIEWER_TILES = ["審査待ち", "支援依頼", "依頼一覧", "報告書確認", "状況", "ヘルプ"]


def tiles(page) -> list[str]:
    return page.locator("#richmenu .area").evaluate_all("nodes => nodes.map((n) => n.title)")


def wait_tiles(page, expected: list[str]) -> None:
    page.wait_for_function("want => JSON.stringify([...document.querySelectorAll('#richmenu .area')]"
                           ".map((a) => a.title)) === JSON.stringify(want)", arg=expected)


def no_error_on_page(page) -> None:
    errors = page.locator(".system.error").all_inner_texts()
    assert not errors, errors


# --- 1. the rich menu ------------------------------------------------------------------------------


def test_the_menu_swaps_live_when_the_bot_links_another(bot_app, page):
    info = start_demo(bot_app)
    open_chat(bot_app, page)
    as_persona(page, "新規ユーザー")
    wait_tiles(page, APPLICANT_TILES)
    page.evaluate("window.__notReloaded = true")

    # The secretariat issues a reviewer code (through the webhook); the new user sends it from the page.
    texts = bot_app.text(demo.SECRETARIAT_ID, f"/code reviewer {info.institution_id}")
    code = re.search(r"担当者登録 ([A-Z2-9]{10})", texts[-1]).group(1)
    user = PERSONAS["新規ユーザー"]
    before = (bot_app.line.rich_menu_for(user) or {}).get("richMenuId")
    say(page, f"担当者登録 {code}", "担当者として登録しました")
    # The link is the worker's job, queued once the reply is out (so drained until it ran);
    # the page must notice the new menu by itself.
    deadline = time.monotonic() + 10
    while (bot_app.line.rich_menu_for(user) or {}).get("richMenuId") == before and time.monotonic() < deadline:
        bot_app.drain()
        time.sleep(0.1)
    wait_tiles(page, REVIEWER_TILES)
    assert page.evaluate("window.__notReloaded === true")
    assert page.locator("#userId").input_value() == PERSONAS["新規ユーザー"]
    shot(page, "keeps-up-menu-swapped")

    # A tile of the new menu works at once.
    answered(page, lambda: page.locator("#richmenu .area[title='審査待ち']").click(), "審査待ち")


def test_a_switched_from_personas_menu_is_gone_at_once(bot_app, page):
    start_demo(bot_app)
    open_chat(bot_app, page)
    as_persona(page, "支援機関担当者")
    wait_tiles(page, REVIEWER_TILES)

    # Hold the next persona's menu request: meanwhile nothing of the reviewer's menu may stay.
    held, released = [], []

    def hold(route) -> None:
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r".*/_sim/richmenu\?user=.*"), hold)
    as_persona(page, "事務局")
    page.wait_for_function("() => document.querySelectorAll('#richmenu .area').length === 0")
    assert page.locator("#toggleMenu").is_hidden()
    page.wait_for_timeout(300)  # a poll or two: still nothing drawn from the old persona
    assert tiles(page) == []
    assert held  # the new persona's menu was asked for, and is only now answered
    released.append(True)
    for route in held:
        route.continue_()
    page.wait_for_function("() => [...document.querySelectorAll('#richmenu .area')].some((a) => a.title === '承認待ち')")
    assert "支援依頼" not in tiles(page)


# --- 2. Japan time, whatever the browser's timezone -------------------------------------------------


@pytest.fixture
def new_york_page(bot_app) -> Iterator:
    with chromium_page("America/New_York") as page:
        yield page


def jst_minutes(start: datetime, end: datetime) -> set[str]:
    """Every HH:MM (Japan time) from ``start`` to ``end``."""
    seen, at = set(), start.astimezone(TOKYO).replace(second=0, microsecond=0)
    while at <= end.astimezone(TOKYO):
        seen.add(f"{at:%H:%M}")
        at += timedelta(minutes=1)
    return seen


def test_times_are_japan_time_in_a_new_york_browser(bot_app, new_york_page):
    page = new_york_page
    start = datetime.now(TOKYO)
    open_chat(bot_app, page)
    assert page.evaluate("new Date().getTimezoneOffset()") in (240, 300)  # the browser is in New York
    as_persona(page, "新規ユーザー")
    say(page, "ヘルプ", "ヘルプ")
    page.get_by_role("button", name="ログ").click()
    page.locator("#opsLines .log .ts").first.wait_for()
    end = datetime.now(TOKYO)

    japan = jst_minutes(start, end)
    new_york = {f"{at.astimezone(NEW_YORK):%H:%M}" for at in (start, end)}
    shown = page.locator("#chat .time").all_inner_texts()
    assert shown and all(t in japan for t in shown), (shown, japan)
    assert not any(t in new_york for t in shown)
    log_times = [t.strip()[:5] for t in page.locator("#opsLines .log .ts").all_inner_texts() if t.strip()]
    assert log_times and all(t in japan for t in log_times), (log_times, japan)
    line_clock = page.locator("#lineClock").inner_text()
    assert any(line_clock.endswith(t) for t in japan | jst_minutes(end, datetime.now(TOKYO))), line_clock
    shot(page, "keeps-up-jst")


# --- 3. stickers and files ---------------------------------------------------------------------------


def test_a_sticker_a_file_and_an_image_are_sent_and_answered(bot_app, page, tmp_path):
    open_chat(bot_app, page)
    as_persona(page, "新規ユーザー")

    page.locator("#stickerButton").click()
    before = bot_rows(page)
    with page.expect_request("**/_sim/send") as sent:
        page.locator("#picker .stickers button").first.click()
    body = sent.value.post_data_json
    assert (body["type"], body["packageId"], body["stickerId"]) == ("sticker", "446", "1988")
    page.locator(".row.user .bubble.sticker").wait_for()
    page.wait_for_function("n => document.querySelectorAll('.row.bot').length > n", arg=before)
    no_error_on_page(page)

    document = tmp_path / "見積書.pdf"
    document.write_bytes(b"%PDF-1.4\n% a small quote\n" + b"0" * 1000)
    before = bot_rows(page)
    with page.expect_file_chooser() as chooser:
        page.locator("#attachButton").click()
    chooser.value.set_files(str(document))
    page.locator(".row.user .bubble .file", has_text="見積書.pdf").wait_for()
    page.wait_for_function("n => document.querySelectorAll('.row.bot').length > n", arg=before)
    assert "1.0 KB" in page.locator(".row.user .bubble .file").last.inner_text()
    no_error_on_page(page)
    shot(page, "keeps-up-sticker-file")

    # An image chosen the same way still goes as an image (the photo path the flows use).
    photo = sample_photo(tmp_path / "photo.jpg", "写真", size=(240, 320))
    before, images = bot_rows(page), page.locator(".row.user .bubble img").count()
    with page.expect_file_chooser() as chooser:
        page.locator("#attachButton").click()
    chooser.value.set_files(str(photo))
    page.wait_for_function("n => document.querySelectorAll('.row.user .bubble img').length > n", arg=images)
    page.wait_for_function("n => document.querySelectorAll('.row.bot').length > n", arg=before)
    no_error_on_page(page)


def test_the_pages_sticker_and_file_events_match_the_webhook_spec():
    """What the bot receives from the page's palette and attach button, checked against LINE's spec."""
    state = PlatformState(channel_access_token="token", channel_secret="secret")
    user, message_id = PERSONAS["新規ユーザー"], state.add_content(b"hello", "text/plain")
    sticker = sim_page._page_event(state, user, "sticker", {"packageId": "446", "stickerId": "1988"})
    file = sim_page._page_event(state, user, "file", {"messageId": message_id, "fileName": "メモ.txt"})
    for event in (sticker, file):
        request = {"destination": events.DEFAULT_DESTINATION, "events": [event]}
        assert schema_validator("CallbackRequest", WEBHOOK_SPEC).violations(request) == []
        assert state.peek_reply_token(event["replyToken"]) == user  # the platform takes the bot's reply to it
    assert (file["message"]["id"], file["message"]["fileSize"]) == (message_id, 5)  # the bot can fetch the bytes
    for bad in ({"packageId": 446, "stickerId": "1"}, {"packageId": "446", "stickerId": "x"},
                {"packageId": "1", "stickerId": "2", "stickerResourceType": "BOGUS"}):
        with pytest.raises(ValueError):
            sim_page._page_event(state, user, "sticker", bad)
    for bad in ({"messageId": "nope", "fileName": "a.txt"}, {"messageId": message_id, "fileName": " "}):
        with pytest.raises(ValueError):
            sim_page._page_event(state, user, "file", bad)


# --- 4. the location picker's address search ----------------------------------------------------------


def test_the_location_picker_finds_an_address_and_sends_it(bot_app, page):
    open_chat(bot_app, page)
    as_persona(page, "新規ユーザー")
    page.locator("#locationButton").click()
    page.locator("#picker input[type=search]").fill("中央区")
    page.locator("#picker input[type=search]").press("Enter")
    results = page.locator("#picker .results button")
    results.first.wait_for()
    assert results.count() >= 3  # 中央区 is in Tokyo, Osaka and Sapporo
    result = results.filter(has_text="銀座")
    place = result.inner_text()
    result.click()
    latitude = float(page.locator("#picker input[aria-label=緯度]").input_value())
    longitude = float(page.locator("#picker input[aria-label=経度]").input_value())
    assert 35.6 < latitude < 35.7 and 139.7 < longitude < 139.8
    shot(page, "keeps-up-address-search")

    before = bot_rows(page)
    with page.expect_request("**/_sim/send") as sent:
        page.locator("#picker button").filter(has_text=re.compile(r"^\s*送信\s*$")).click()
    body = sent.value.post_data_json
    assert body["type"] == "location" and body["address"] == place and body["title"]
    assert (body["latitude"], body["longitude"]) == (latitude, longitude)
    page.locator(".row.user .bubble", has_text=place).wait_for()
    page.wait_for_function("n => document.querySelectorAll('.row.bot').length > n", arg=before)
    no_error_on_page(page)

    # An address the gazetteer does not know is said so in the picker.
    page.locator("#locationButton").click()
    page.locator("#picker input[type=search]").fill("該当なしの住所ですよ")
    page.locator("#picker button").filter(has_text=re.compile(r"^\s*検索\s*$")).click()
    page.locator("#picker .results .note", has_text="見つかりませんでした").wait_for()
    # …and a search the geocoder cannot answer now.
    bot_app.line.fail("/gsi/address-search/AddressSearch", 503)
    page.locator("#picker button").filter(has_text=re.compile(r"^\s*検索\s*$")).click()
    page.locator("#picker .results .note", has_text="住所検索を利用できません").wait_for()
