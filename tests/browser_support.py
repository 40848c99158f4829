"""Driving the simulator's chat page like a person: Playwright + Debian's chromium.

Shared by the browser tests (``tests/test_browser.py``,
``tests/test_browser_walkthrough.py``). Importing this module skips the
importing test module when chromium or Playwright is missing.

Every helper acts the way a person does — clicks a button, a quick reply,
a rich-menu tile, a card's button; types and presses Enter; picks a file
or a point on the location dialog — and then waits for the bot's answer
to appear as a *new* bubble (never a blind sleep).
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "var" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 520, "height": 900}
TIMEOUT_MS = 8000

# The chat page's persona buttons (simulator/static/chat.html PRESETS; handlers/demo_seed.py).
PERSONAS = {
    "新規ユーザー": "U00000000000000000000000000000001",
    "専門家": "U00000000000000000000000000000002",
    "支援機関担当者": "U00000000000000000000000000000003",
    "事務局": "U00000000000000000000000000000004",
}


@pytest.fixture(autouse=True)
def _sqlite_only(request: pytest.FixtureRequest) -> None:
    """The page is what these tests look at: the database is covered on PostgreSQL by the other suites."""
    if "db_kind" in request.fixturenames and request.getfixturevalue("db_kind") != "sqlite":
        pytest.skip("browser tests run on SQLite only (the chat page is under test, not the database)")


@contextlib.contextmanager
def chromium_page(timezone_id: str = "Asia/Tokyo") -> Iterator["sync_api.Page"]:
    """Debian's chromium at the chat page's size, Japanese, in ``timezone_id`` (the ``page``
    fixture's is Tokyo; a test may pick another: the page must show Japan time whatever the
    browser's); a JavaScript error on the page fails the test."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT, locale="ja-JP", timezone_id=timezone_id)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(name="page")  # imported by the browser test modules as page_fixture
def page_fixture(bot_app) -> Iterator["sync_api.Page"]:
    with chromium_page() as page:
        yield page


# --- the demo, as `make run` sets it up ----------------------------------------------------------


def start_demo(bot_app):
    """Seed every persona the way ``python bot.py demo`` does, sync the rich menus, and make the
    bot's file links point at the bot itself (``make run``: PUBLIC_BASE_URL is the bot's port)."""
    from handlers import demo_seed as demo
    from handlers import richmenu

    rt = bot_app.rt
    rt.config = dataclasses.replace(rt.config, public_base_url=bot_app.url)
    info = demo.seed(rt.program, rt.crypto)
    richmenu.sync(rt.line, rt.worker_redis, relink_all=True)
    bot_app.drain()
    return info


def open_chat(bot_app, page) -> None:
    page.goto(bot_app.config.line_api_base_url + "/")
    page.locator("#presets button").first.wait_for()


# --- screenshots ----------------------------------------------------------------------------------


def shot(page, name: str) -> Path:
    """A screenshot of the page (the viewport) as ``var/screenshots/<name>.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# --- waiting for the bot --------------------------------------------------------------------------


def bot_rows(page) -> int:
    return page.locator(".row.bot").count()


def wait_bot(page, *texts: str, after: int | None = None) -> None:
    """Wait until bot bubbles after the first ``after`` ones contain every one of ``texts``."""
    try:
        page.wait_for_function(
            """([n, texts]) => {
                const rows = [...document.querySelectorAll('.row.bot')].slice(n);
                return texts.every((t) => rows.some((r) => r.innerText.includes(t)));
            }""",
            arg=[after or 0, list(texts)],
        )
    except sync_api.TimeoutError:
        shot(page, "failed")
        seen = page.locator(".row.bot").evaluate_all("rows => rows.map((r) => r.innerText)")
        raise AssertionError(f"the bot did not say {texts!r}; its last bubbles: {seen[-4:]!r}"
                             f" (screenshot: var/screenshots/failed.png)") from None


def bot_says(page, text: str) -> None:
    """Wait until a bot bubble containing ``text`` is on the page (anywhere)."""
    page.locator(".row.bot", has_text=text).last.wait_for()


def answered(page, action: Callable[[], object], *expect: str) -> None:
    """Do ``action`` and wait for new bot bubbles containing ``expect``."""
    before = bot_rows(page)
    action()
    if expect:
        wait_bot(page, *expect, after=before)


def last_bot_text(page) -> str:
    return page.locator(".row.bot").last.inner_text()


# --- acting as the user ---------------------------------------------------------------------------


def exact(label: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(label)}\s*$")


def as_persona(page, label: str, *expect: str) -> None:
    """Tap one of the page's persona buttons (their chat is kept when switching back)."""
    page.locator(f"#presets button[data-id='{PERSONAS[label]}']").click()
    page.wait_for_function("id => document.querySelector('#userId').value === id", arg=PERSONAS[label])
    for text in expect:
        bot_says(page, text)


def type_and_send(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    page.locator(".row.user .bubble", has_text=text).last.wait_for()


def say(page, text: str, *expect: str) -> None:
    """Type ``text``, press Enter, wait for the answer."""
    answered(page, lambda: type_and_send(page, text), *expect)


def quick(page, label: str, *expect: str) -> None:
    """Tap a quick-reply button."""
    answered(page, lambda: page.locator("#quick button").filter(has_text=exact(label)).click(), *expect)


def card_button(page, label: str):
    """The button ``label`` on the newest card (Flex or template) that has one."""
    return page.locator(".row.bot .card button").filter(has_text=exact(label)).last


def tap(page, label: str, *expect: str) -> None:
    """Tap a button on a card (Flex or template message)."""
    answered(page, lambda: card_button(page, label).click(), *expect)


def menu(page, label: str, *expect: str) -> None:
    """Tap a tile of the rich menu drawn under the chat."""
    answered(page, lambda: page.locator(f"#richmenu .area[title='{label}']").click(), *expect)


def menu_open(page) -> bool:
    return page.locator("#richmenu.open").count() == 1


def show_menu(page, shown: bool) -> None:
    """The chat bar's menu button opens or closes the rich menu (like LINE's)."""
    page.locator("#richmenu .area").first.wait_for(state="attached")
    if menu_open(page) != shown:
        page.locator("#toggleMenu").click()
    page.wait_for_function("shown => document.querySelector('#richmenu').classList.contains('open') === shown", arg=shown)
    scroll_to_bottom(page)


def scroll_to_bottom(page) -> None:
    """Scroll the chat to its newest message (as a person does after the menu opened or closed)."""
    page.locator("#chat").evaluate("chat => { chat.scrollTop = chat.scrollHeight; }")


def pick(page, value: str, *expect: str, opener: str | None = None) -> None:
    """A datetimepicker: tap its quick reply (``opener``: its label), fill the date/time, 決定."""
    if opener:
        page.locator("#quick button").filter(has_text=exact(opener)).click()
    page.locator("#picker input").first.fill(value)
    answered(page, lambda: page.locator("#picker button").filter(has_text=exact("決定")).click(), *expect)


def open_location(page, point: str, opener: str | None = None) -> None:
    """Open the location dialog (a quick reply ``opener``, else the footer's 位置) and choose a named point."""
    if opener:
        page.locator("#quick button").filter(has_text=exact(opener)).click()
    else:
        page.locator("#locationButton").click()
    page.locator("#picker select").select_option(label=point)


def send_location(page, point: str, *expect: str, opener: str | None = None) -> None:
    """Send a named point of the location dialog (派遣先（東京駅）, 派遣先の40m北, 1.2km離れた場所)."""
    open_location(page, point, opener)
    answered(page, lambda: page.locator("#picker button").filter(has_text=exact("送信")).click(), *expect)


def send_photo(page, path: Path, *expect: str, via: str | None = None) -> None:
    """Choose a photo through the file chooser: a quick reply (写真を選ぶ / カメラで撮る) or the footer's 画像."""
    images = page.locator(".row.user .bubble img").count()

    def choose() -> None:
        with page.expect_file_chooser() as chooser:
            if via:
                page.locator("#quick button").filter(has_text=exact(via)).click()
            else:
                page.locator("#imageButton").click()
        chooser.value.set_files(str(path))
        page.wait_for_function("n => document.querySelectorAll('.row.user .bubble img').length > n", arg=images)

    answered(page, choose, *expect)


def sample_photo(path: Path, caption: str, size: tuple[int, int] = (480, 640), color: tuple[int, int, int] = (215, 228, 240)) -> Path:
    """A JPEG a person would pick: a plain card with a caption in the shipped IPAex Gothic."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(ROOT / "assets" / "fonts" / "ipaexg.ttf"), size=max(24, size[0] // 12))
    draw.rectangle([12, 12, size[0] - 13, size[1] - 13], outline=(90, 110, 140), width=6)
    box = draw.textbbox((0, 0), caption, font=font)
    draw.text(((size[0] - (box[2] - box[0])) / 2, (size[1] - (box[3] - box[1])) / 2), caption, fill=(40, 50, 70), font=font)
    image.save(path, "JPEG", quality=85)
    return path
