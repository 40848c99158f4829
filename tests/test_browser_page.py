"""The chat page's own tools, in a real browser: the ops panel, unread
badges, a transcript that survives reloads and persona switches, one
persona per tab. (Every flow of the product is walked in
``tests/test_browser_walkthrough.py``.)"""
from __future__ import annotations

from storage import repo
from tests.browser_support import (  # noqa: F401  (fixtures)
    PERSONAS,
    _sqlite_only,
    as_persona,
    bot_says,
    open_chat,
    page_fixture,
    quick,
    say,
    shot,
)

NEW_USER = PERSONAS["新規ユーザー"]


def start_registration(bot_app, page) -> None:
    open_chat(bot_app, page)
    as_persona(page, "新規ユーザー")
    page.locator("#follow").click()
    bot_says(page, "個人情報の取扱い")


def test_ops_panel_tails_this_users_log_lines(bot_app, page):
    start_registration(bot_app, page)
    page.get_by_role("button", name="ログ").click()
    lines = page.locator("#opsLines .log")
    lines.filter(has_text="webhook.event").first.wait_for()
    assert lines.filter(has_text="processed").count() >= 1 and lines.filter(has_text="line_api.call").count() >= 1
    before = lines.count()
    quick(page, "同意する", "機関コード")
    page.wait_for_function("n => document.querySelectorAll('#opsLines .log').length > n", arg=before)
    assert "terms→institution" in lines.last.inner_text() or any(
        "terms→institution" in t for t in lines.all_inner_texts())
    shot(page, "page-ops-panel")

    # Another persona's lines are not shown: the panel starts again for them.
    as_persona(page, "事務局")
    page.wait_for_timeout(1200)  # a log poll or two
    assert lines.filter(has_text="terms→institution").count() == 0


def test_a_push_to_another_persona_shows_a_badge_until_opened(bot_app, page):
    open_chat(bot_app, page)
    as_persona(page, "事務局")
    bot_app.line.record_delivery(NEW_USER, "push", [{"type": "text", "text": "審査結果のお知らせ"}])
    badge = page.locator("#presets button", has_text="新規ユーザー").locator(".badge")
    badge.wait_for()
    assert badge.inner_text() == "1"
    shot(page, "page-unread-badge")
    as_persona(page, "新規ユーザー")
    bot_says(page, "審査結果のお知らせ")
    badge.wait_for(state="detached")


def test_reload_and_switching_back_show_both_sides_once(bot_app, page):
    repo.create_institution("テスト商工会議所", "認定支援機関")
    start_registration(bot_app, page)
    quick(page, "同意する", "機関コード")
    say(page, "ABC", "英数字6桁")

    def transcript() -> list[str]:
        return page.locator("#chat .row .bubble, #chat .system").evaluate_all(
            "nodes => nodes.map((n) => n.innerText).filter((t) => !t.includes('として操作中'))")

    seen = transcript()
    assert seen.count("同意する") == 1 and seen.count("ABC") == 1 and "友だち追加しました" in seen
    page.reload()
    bot_says(page, "英数字6桁")
    page.wait_for_timeout(800)  # polls that would draw anything twice
    assert transcript() == seen
    as_persona(page, "支援機関担当者")
    as_persona(page, "新規ユーザー")
    bot_says(page, "英数字6桁")
    page.wait_for_timeout(800)
    assert transcript() == seen


def test_each_tab_keeps_its_persona_in_the_address(bot_app, page):
    page.goto(bot_app.config.line_api_base_url + "/?user=" + PERSONAS["支援機関担当者"])
    page.locator(".system", has_text="支援機関担当者").wait_for()
    as_persona(page, "事務局")
    assert page.url.endswith("?user=" + PERSONAS["事務局"])
    page.reload()
    page.locator(".system", has_text="事務局").wait_for()
    assert page.locator("#presets button.active").inner_text().startswith("事務局")
