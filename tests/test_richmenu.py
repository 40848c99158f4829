"""Rich menus: one per role, drawn within LINE's limits, synced idempotently, linked on role changes.

Everything goes through the fake LINE platform over HTTP (contract-checked:
the fixture fails a test that sent anything LINE would refuse); role changes
happen the way people make them, through signed webhooks.
"""
from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys

import pytest
from PIL import Image

import bot
from handlers import richmenu, richmenu_drawing
from handlers.line_api import LineApiError
from storage.models import Expert, LineUser
from tests.actors import EXPERT, REVIEWER, SEC, institution_with_reviewer, secretariat, submitted_application

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sync(bot_app, layouts=richmenu.LAYOUTS, **kw) -> richmenu.SyncResult:
    return richmenu.sync(bot_app.rt.line, bot_app.rt.worker_redis, layouts, **kw)


def menu_of(bot_app, user: str) -> str | None:
    """The name of the menu ``user`` sees (their own, else the default)."""
    menu = bot_app.line.rich_menu_for(user)
    return menu["name"] if menu else None


def role_menu(role: str) -> str:
    return richmenu.menu_name(richmenu.LAYOUTS[role])


def test_sync_creates_one_menu_per_role_within_lines_limits(bot_app):
    result = sync(bot_app)
    menus = bot_app.line.rich_menus
    assert len(menus) == 4 and sorted(result.created) == sorted(role_menu(r) for r in richmenu.LAYOUTS)
    for role, menu_id in result.ids.items():
        menu = menus[menu_id]
        assert menu["name"].startswith(f"119-{role}-v{richmenu_drawing.RENDER_VERSION}-")
        data, content_type = bot_app.line.rich_menu_image(menu_id)
        assert content_type == "image/png" and data.startswith(PNG_SIGNATURE) and len(data) <= 1024 * 1024
        width, height = menu["size"]["width"], menu["size"]["height"]
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (width, height)
        assert width == 2500 and height in (843, 1686) and width / height >= 1.45
        for area in menu["areas"]:
            b, action = area["bounds"], area["action"]
            assert b["x"] + b["width"] <= width and b["y"] + b["height"] <= height
            assert action["type"] == "message" and action["text"] and len(action["label"]) <= 20
        # The tiles cover the whole image, so every tap lands on one.
        assert sum(a["bounds"]["width"] * a["bounds"]["height"] for a in menu["areas"]) == width * height
    assert bot_app.line.default_rich_menu == result.ids["applicant"]
    assert richmenu.stored_ids(bot_app.rt.worker_redis) == result.ids
    texts = {role: [a["action"]["text"] for a in menus[i]["areas"]] for role, i in result.ids.items()}
    assert texts["applicant"] == ["登録", "状況", "ヘルプ"]
    assert texts["expert"] == ["チェックイン", "チェックアウト", "報告書", "登録内容の変更", "状況", "ヘルプ"]
    assert {"審査待ち", "支援依頼", "報告書", "ヘルプ"} <= set(texts["reviewer"])
    assert {"/pending", "/dispatches", "/reports", "/help"} <= set(texts["secretariat"])


def test_labels_are_readable_on_their_tiles():
    for layout in richmenu.LAYOUTS.values():
        for color in richmenu_drawing.tile_colors(layout):
            assert richmenu_drawing.contrast_ratio(richmenu_drawing.WHITE, color) >= 4.5, (layout.role, color)


def test_a_second_sync_creates_and_deletes_nothing(bot_app):
    first = sync(bot_app)
    second = sync(bot_app)
    assert second.ids == first.ids and second.created == [] and second.deleted == [] and second.relinked == 0
    assert len(bot_app.line.rich_menus) == 4


def test_a_changed_layout_replaces_the_old_menu_and_moves_its_users(bot_app):
    first = sync(bot_app)
    commissioned = _commissioned(bot_app)
    richmenu.link(bot_app.rt.line, bot_app.rt.worker_redis, EXPERT)
    assert menu_of(bot_app, EXPERT) == role_menu("expert")

    expert_layout = richmenu.LAYOUTS["expert"]
    changed = dataclasses.replace(expert_layout, tiles=expert_layout.tiles[:5] + (
        richmenu_drawing.Tile("使い方", "ヘルプ", "help"),))
    layouts = {**richmenu.LAYOUTS, "expert": changed}
    result = sync(bot_app, layouts)

    new_name = richmenu.menu_name(changed)
    assert result.created == [new_name] and result.deleted == [role_menu("expert")]
    assert first.ids["expert"] not in bot_app.line.rich_menus and len(bot_app.line.rich_menus) == 4
    assert result.ids == {**first.ids, "expert": result.ids["expert"]}, "the other menus are kept"
    assert menu_of(bot_app, EXPERT) == new_name and result.relinked == 1, "moved before the old menu went"
    assert richmenu.stored_ids(bot_app.rt.worker_redis)["expert"] == result.ids["expert"]
    assert commissioned.status == "commissioned"


def test_a_failed_upload_leaves_no_menu_without_an_image(bot_app):
    bot_app.line.fail("/v2/bot/richmenu/*/content", 500, count=1)
    with pytest.raises(LineApiError) as failed:
        sync(bot_app)
    assert failed.value.transient and bot_app.line.rich_menus == {}, "the half-made menu was deleted"
    assert sync(bot_app).created and len(bot_app.line.rich_menus) == 4


def test_a_reviewer_code_sent_in_line_links_the_reviewer_menu_and_revoke_unlinks_it(bot_app):
    sync(bot_app)
    secretariat(bot_app)
    institution_with_reviewer(bot_app, "メニュー商工会", REVIEWER)
    assert menu_of(bot_app, REVIEWER) == role_menu("applicant"), "linked by the worker, after commit"
    bot_app.drain()
    assert menu_of(bot_app, REVIEWER) == role_menu("reviewer")
    assert menu_of(bot_app, SEC) == role_menu("secretariat")

    number = LineUser.get(LineUser.line_user_id == REVIEWER).id
    assert "取り消します" in bot_app.text(SEC, f"/revoke {number}")[0]
    bot_app.say(SEC, "postback", data="c=yes")
    bot_app.drain()
    assert REVIEWER not in bot_app.line.user_rich_menus
    assert menu_of(bot_app, REVIEWER) == role_menu("applicant"), "back to the default menu"
    assert menu_of(bot_app, SEC) == role_menu("secretariat")


def test_an_expert_who_accepts_the_commission_gets_the_expert_menu(bot_app):
    sync(bot_app)
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "委嘱商工会", REVIEWER)
    expert = submitted_application(inst)
    expert.status = "conditions_agreed"
    expert.save()
    bot_app.drain()
    assert menu_of(bot_app, EXPERT) == role_menu("applicant")
    bot_app.say(EXPERT, "postback", data="a=accept")
    bot_app.text(EXPERT, "山田太郎")
    assert "委嘱の手続きはすべて完了" in bot_app.say(EXPERT, "postback", data="c=yes")[0]
    bot_app.drain()
    assert menu_of(bot_app, EXPERT) == role_menu("expert")


def test_linking_before_the_first_sync_does_nothing(bot_app):
    secretariat(bot_app)
    bot_app.drain()  # the job ran: no menus exist yet, so it asked LINE nothing
    assert bot_app.line.rich_menus == {} and bot_app.line.user_rich_menus == {}
    assert richmenu.link(bot_app.rt.line, bot_app.rt.worker_redis, SEC) == "not_synced"


def test_richmenu_sync_command_against_the_platform(bot_app, redis_url):
    secretariat(bot_app)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": bot_app.config.data_dir,
           "LINE_CHANNEL_SECRET": bot_app.config.channel_secret,
           "LINE_CHANNEL_ACCESS_TOKEN": bot_app.config.channel_access_token,
           "DATA_ENCRYPTION_KEYS": ",".join(bot_app.config.data_encryption_keys),
           "SIGNING_KEY": bot_app.config.signing_key, "DATABASE_URL": bot_app.config.database_url,
           "REDIS_URL": redis_url, "LINE_API_BASE_URL": bot_app.config.line_api_base_url,
           "LINE_DATA_API_BASE_URL": bot_app.config.line_data_api_base_url}
    out = subprocess.run([sys.executable, "bot.py", "richmenu", "sync"], cwd=bot.ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "作成 4、削除 0、付け替え 1 名" in out.stdout, out.stdout
    assert len(bot_app.line.rich_menus) == 4
    assert richmenu.stored_ids(bot_app.rt.worker_redis)["secretariat"] in out.stdout
    assert menu_of(bot_app, SEC) == role_menu("secretariat"), "existing staff are linked by the first sync"


def _commissioned(bot_app) -> Expert:
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "変更商工会", REVIEWER)
    expert = submitted_application(inst)
    expert.status = "commissioned"
    expert.save()
    bot_app.drain()
    return expert
