"""The simulator's chat page in a real browser (Playwright + Debian chromium).

Drives the 新規ユーザー persona through the first registration steps by
clicking and typing like a person would, and saves screenshots to
``var/screenshots/`` for the README. Skipped when chromium or Playwright is
not installed; SQLite only. The whole demo, every flow, is walked in
``tests/test_browser_walkthrough.py``; the shared fixture and helpers are in
``tests/browser_support.py``.
"""
from __future__ import annotations

from storage import repo
from tests.browser_support import _sqlite_only, bot_says, page_fixture, shot, type_and_send  # noqa: F401  (fixtures, helpers)


def test_new_user_registers_through_the_page(bot_app, page, tmp_path):
    code = repo.create_institution("テスト商工会議所", "認定支援機関").code
    page.goto(bot_app.config.line_api_base_url + "/")

    page.get_by_role("button", name="新規ユーザー").click()
    page.locator(".system", has_text="新規ユーザー").wait_for()
    page.get_by_role("button", name="友だち追加").click()
    bot_says(page, "個人情報の取扱い")
    shot(page, "01-follow")

    page.locator("#quick button", has_text="同意する").click()
    page.locator(".row.user .bubble", has_text="同意する").wait_for()
    bot_says(page, "機関コード")

    type_and_send(page, code)
    bot_says(page, "氏名を入力")
    type_and_send(page, "山田 太郎")
    bot_says(page, "フリガナ")
    type_and_send(page, "やまだ たろう")
    bot_says(page, "ヤマダ　タロウ")

    # 生年月日: the datetimepicker quick reply opens a date input.
    page.locator("#quick button").first.click()
    date_input = page.locator("#picker input[type=date]")
    date_input.fill("1980-04-01")
    shot(page, "02-date-picker")
    page.locator("#picker button", has_text="決定").click()
    bot_says(page, "昭和55年4月1日")
    assert page.locator(".row.bot .time").count() > 0, "bot messages carry a timestamp"
    shot(page, "03-birthdate-confirmed")

    # A photo through the image button's file chooser: uploaded, then sent as an image event.
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(photo, "JPEG")
    bot_rows = page.locator(".row.bot").count()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="画像").click()
    chooser.value.set_files(str(photo))
    page.locator(".row.user .bubble img").last.wait_for()
    page.wait_for_function("n => document.querySelectorAll('.row.bot').length > n", arg=bot_rows)
    assert any(data == photo.read_bytes() for data, _ in bot_app.line._contents.values()), "uploaded to /_sim/content"
    shot(page, "04-photo")


def test_location_dialog_and_flex_rendering(bot_app, page):
    page.goto(bot_app.config.line_api_base_url + "/")
    page.get_by_role("button", name="新規ユーザー").click()
    page.locator(".system", has_text="新規ユーザー").wait_for()
    page.get_by_role("button", name="位置").click()
    page.locator("#picker select").select_option(label="派遣先（東京駅）")
    assert page.locator("#picker input[aria-label=緯度]").input_value() == "35.681236"
    shot(page, "05-location-dialog")
    page.locator("#picker button", has_text="送信").click()
    page.locator(".row.user .bubble", has_text="派遣先（東京駅）").wait_for()
    shot(page, "06-location-sent")

    # A Flex carousel pushed to the user: sections, horizontal box, and a postback button.
    button = {"type": "button", "style": "primary",
              "action": {"type": "postback", "label": "承認する", "data": "a=ok", "displayText": "承認します"}}
    bubble = {"type": "bubble",
              "header": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "確認", "weight": "bold"}]},
              "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": [
                  {"type": "box", "layout": "baseline", "contents": [
                      {"type": "text", "text": "氏名", "size": "sm", "color": "#888888", "flex": 2},
                      {"type": "text", "text": "山田 太郎", "wrap": True, "flex": 5}]},
                  {"type": "separator"}]},
              "footer": {"type": "box", "layout": "vertical", "contents": [button]}}
    message = {"type": "flex", "altText": "確認", "contents": {"type": "carousel", "contents": [bubble, bubble]}}
    bot_app.line.record_delivery("U00000000000000000000000000000001", "push", [message])
    page.locator(".row.bot .cards .card").nth(1).wait_for()
    assert page.locator(".row.bot .card .flex-box.baseline", has_text="山田 太郎").count() == 2
    shot(page, "07-flex-carousel")
    page.locator(".row.bot .card button", has_text="承認する").first.click()
    page.locator(".row.user .bubble", has_text="承認します").wait_for()
