"""The expert's rights, in a real browser (issue 11): 登録内容, 退会, then the operator's purge and key
rotation, with the chat page still working afterwards.

An expert is commissioned through LINE (signed webhooks, as ``tests/test_rights.py`` does: the
registration itself is walked through the page in ``tests/test_browser_walkthrough.py``); then the
chat page, opened as that expert in Debian's chromium, does the rest like a person would:

1. types 登録内容 → the disclosure (the summary card, the status history, the consents) and the
   photos as buttons; a button opens the photo (HTTP 200, an image);
2. types 退会 → what will be erased and what is kept, before anything happens; はい → done, and
   the rich menu under the chat turns back to the default one, without a reload;
3. the operator adds a new key (``DATA_ENCRYPTION_KEYS=new,old``, the bot restarted with both), runs
   ``python bot.py purge`` and ``python bot.py keys rotate`` on the bot's database and data dir,
   then drops the old key (the bot restarted with the new key only);
4. the page, reloaded, still shows the whole conversation, and the expert can still use the bot:
   ヘルプ answers, and 登録内容 (read under the new key alone) says they have withdrawn.

SQLite only, like every browser test (``tests/browser_support.py``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from cryptography.fernet import Fernet

from handlers import richmenu
from storage import sealed
from storage.crypto import FieldCrypto
from storage.files import EncryptedFileStore
from storage.models import AuditLog, Expert
from tests.browser_support import (  # noqa: F401  (fixtures)
    _sqlite_only,
    bot_says,
    page_fixture,
    say,
    shot,
    start_demo,
    tap,
)
from tests.test_journey import EXPERT
from tests.test_personal_data import cli, commissioned_through_line, env_for

APPLICANT_TILES = [t.label for t in richmenu.LAYOUTS["applicant"].tiles]
EXPERT_TILES = [t.label for t in richmenu.LAYOUTS["expert"].tiles]


def wait_tiles(page, expected: list[str]) -> None:
    page.wait_for_function("want => JSON.stringify([...document.querySelectorAll('#richmenu .area')]"
                           ".map((a) => a.title)) === JSON.stringify(want)", arg=expected)


def open_as(bot_app, page, user: str) -> None:
    """The chat page as ``user`` (``?user=``: any LINE user id, not only the preset personas)."""
    page.goto(f"{bot_app.config.line_api_base_url}/?user={user}")
    page.wait_for_function("id => document.querySelector('#userId').value === id", arg=user)


def restart_with_keys(bot_app, keys: list[str]) -> None:
    """The bot restarted with ``DATA_ENCRYPTION_KEYS`` set to ``keys`` (what ``runtime.build`` wires)."""
    rt = bot_app.rt
    rt.config = dataclasses.replace(rt.config, data_encryption_keys=tuple(keys))
    rt.crypto = FieldCrypto(keys, rt.config.signing_key)
    sealed.configure(rt.crypto)
    rt.files = EncryptedFileStore(rt.files.root, rt.crypto)


def operator(bot_app, tmp_path: Path, keys: list[str], *args: str) -> str:
    """``python bot.py <args>`` on the bot's own database and data directory, with ``keys``."""
    env = {**env_for(tmp_path, bot_app.config.database_url, keys), "SIGNING_KEY": bot_app.config.signing_key}
    done = cli(env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_disclosure_withdrawal_purge_and_key_rotation_in_the_chat_page(bot_app, page, tmp_path):
    start_demo(bot_app)  # the personas, the rich menus, and photo links that point at the bot
    expert = commissioned_through_line(bot_app)
    assert bot_app.line.rich_menu_for(EXPERT)["name"] == richmenu.menu_name(richmenu.LAYOUTS["expert"])
    open_as(bot_app, page, EXPERT)
    wait_tiles(page, EXPERT_TILES)

    # 1. 登録内容: the summary, the photos, the history and the consents.
    say(page, "登録内容", "保有している個人データを開示します", f"申請No.{expert.id}（委嘱済み）",
        "登録内容（保有個人データ）", "提出写真", "【手続きの履歴】", "【同意の記録】")
    disclosure = page.locator(".row.bot").evaluate_all("rows => rows.map((r) => r.innerText).join('\\n')")
    for shown in ("鈴木", "hanako.suzuki@example.com", "入力中（未送信） → 支援機関の審査待ち",
                  "委嘱条件に同意済み（就任承諾待ち） → 委嘱済み", "個人情報の取扱い（2026-04）：同意", "就任承諾書：提出"):
        assert shown in disclosure, shown
    shot(page, "rights-01-disclosure")
    # A photo button opens the photo through its short-lived signed link.
    photo_button = page.locator(".row.bot .card button").filter(has_text="顔写真").last
    responses: list = []
    page.context.on("response", lambda r: responses.append(r))
    with page.expect_popup() as opened:
        photo_button.click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url.startswith(bot_app.url + "/files/"), popup.url
    [response] = [r for r in responses if r.url == popup.url and r.frame.page == popup]
    assert response.status == 200 and response.headers["content-type"] == "image/jpeg", (response.status, response.url)
    assert popup.evaluate("document.contentType") == "image/jpeg" and popup.locator("img").count() == 1
    popup.close()

    # 2. 退会: what goes and what stays first; いいえ would change nothing, はい withdraws.
    say(page, "退会", "退会すると、次の個人データを削除します", "電話番号・メールアドレス・生年月日・住所",
        "氏名・フリガナ・振込口座", "手続きの履歴と同意の記録（日時と内容）は残ります", "よろしいですか")
    shot(page, "rights-02-withdrawal-plan")
    assert Expert.get_by_id(expert.id).status == "commissioned", "nothing happens before the confirmation"
    linked = bot_app.line.rich_menu_for(EXPERT)["richMenuId"]
    tap(page, "はい", "退会の手続きが完了しました", "削除した情報：", "保管する情報：")
    assert Expert.get_by_id(expert.id).status == "withdrawn"
    # The menu is relinked (by the worker, if queued); the page notices the default one by itself.
    deadline = time.monotonic() + 10
    while bot_app.line.rich_menu_for(EXPERT)["richMenuId"] == linked and time.monotonic() < deadline:
        bot_app.drain()
        time.sleep(0.1)
    assert bot_app.line.rich_menu_for(EXPERT)["name"] == richmenu.menu_name(richmenu.LAYOUTS["applicant"]), \
        "the default menu again"
    wait_tiles(page, APPLICANT_TILES)
    shot(page, "rights-03-withdrawn")

    # 3. The operator: a new key first (the bot restarted with both), purge, rotate, the old key dropped.
    old = list(bot_app.config.data_encryption_keys)
    new = Fernet.generate_key().decode()
    restart_with_keys(bot_app, [new, *old])
    purged = operator(bot_app, tmp_path, [new, *old], "purge")
    assert "retention purge done" in purged and "withdrawn_records: 0" in purged, "kept records_years, not yet due"
    rotated = operator(bot_app, tmp_path, [new, *old], "keys", "rotate")
    assert "expert.family_name:" in rotated and "moved to the newest key" in rotated
    assert "older key(s) can now be removed" in rotated, rotated
    restart_with_keys(bot_app, [new])
    assert AuditLog.select().where(AuditLog.action == "keys.rotate").count() == 1
    assert AuditLog.select().where((AuditLog.action == "retention.purge") & (AuditLog.actor == "cli")).count() == 1

    # 4. The page reloaded: the whole conversation is still there, and the bot still answers.
    page.reload()
    page.wait_for_function("id => document.querySelector('#userId').value === id", arg=EXPERT)
    for said in ("保有している個人データを開示します", "退会すると、次の個人データを削除します", "退会の手続きが完了しました"):
        bot_says(page, said)
    wait_tiles(page, APPLICANT_TILES)
    say(page, "ヘルプ", "退会済みです")
    say(page, "登録内容", "保有している個人データを開示します", "退会済み", "委嘱済み → 退会済み")
    assert Expert.get_by_id(expert.id).family_name == "退会者", "readable under the new key alone"
    shot(page, "rights-04-after-rotation")

