"""Ops: init-db, configuration errors, the logs command, nothing personal in logs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bot
from handlers.config import Config, ConfigError
from storage import repo
from storage.migrations import LATEST, apply_migrations, current_version

ROOT = Path(bot.ROOT)
DAVE = "U" + "d" * 32


def test_init_db_is_idempotent_and_records_the_schema_version(bot_app):
    assert current_version() == LATEST
    assert apply_migrations() == (LATEST, LATEST)


def test_init_db_command_on_a_fresh_sqlite_file(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
           "DATA_ENCRYPTION_KEYS": "k", "SIGNING_KEY": "g", "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    for _ in range(2):
        out = subprocess.run([sys.executable, "bot.py", "init-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert f"schema version {LATEST} → {LATEST}" in out.stdout


@pytest.mark.parametrize("missing", ["LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "DATA_ENCRYPTION_KEYS", "SIGNING_KEY"])
def test_missing_required_setting_is_named_in_one_line(missing):
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": "k", "SIGNING_KEY": "g"}
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        Config.from_env(env)


def test_serve_refuses_to_start_without_a_required_setting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LINE_CHANNEL_SECRET": "s",
           "DATA_ENCRYPTION_KEYS": "k", "SIGNING_KEY": "g"}
    out = subprocess.run([sys.executable, "bot.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "LINE_CHANNEL_ACCESS_TOKEN" in out.stderr


def test_log_lines_have_the_fields_ops_need_and_nothing_personal(bot_app):
    code = repo.create_institution("ログ商工会", "よろず").code
    bot_app.say(DAVE, "follow")
    bot_app.text(DAVE, "同意する")
    bot_app.text(DAVE, code)
    bot_app.text(DAVE, "鈴木 花子")
    bot_app.text(DAVE, "すずき はなこ")
    lines = bot_app.log_lines()
    entries = [json.loads(line) for line in lines]
    events = [e for e in entries if e["event"] == "webhook.event"]
    assert len(events) == 5
    for e in events:
        assert e["webhook_event_id"] and e["request_id"] and e["user"].startswith("u_") and "ms" in e and e["outcome"]
    steps = [e for e in entries if e["event"] == "webhook.event"]
    assert {(e["state_before"], e["state_after"]) for e in steps} >= {("terms", "institution"), ("name", "kana")}
    blob = "\n".join(lines)
    for secret in (DAVE, "鈴木", "花子", "スズキ", "すずき", bot_app.config.channel_access_token, bot_app.config.channel_secret):
        assert secret not in blob


def test_logs_command_filters_by_user_flow_and_level(bot_app):
    bot_app.say(DAVE, "follow")
    other = "U" + "e" * 32
    bot_app.say(other, "follow")
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": bot_app.config.data_dir, "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": "k", "SIGNING_KEY": bot_app.config.signing_key}
    out = subprocess.run([sys.executable, "bot.py", "logs", "--user", DAVE], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert entries and all(e["user"] == entries[0]["user"] for e in entries)
    out = subprocess.run([sys.executable, "bot.py", "logs", "--flow", "profile", "--level", "info", "--since", "1h"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    flows = {json.loads(line)["flow"] for line in out.stdout.splitlines()}
    assert flows == {"profile"}
    out = subprocess.run([sys.executable, "bot.py", "logs", "--level", "error"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == ""


def test_a_version_one_database_is_migrated_in_place(tmp_path):
    import sqlite3

    from storage import db as storage_db

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(
        "create table schemaversion(version integer primary key, applied_at datetime);"
        "insert into schemaversion values(1, '2026-11-01');"
        "create table lineuser(id integer primary key, line_user_id varchar(64));"
        "create table expert(id integer primary key, user_id integer, status varchar(32));"
        "insert into expert(id, user_id, status) values (7, 1, 'draft');"
    )
    con.close()
    storage_db.bind(f"sqlite:///{path}")
    try:
        assert apply_migrations() == (1, LATEST)
        columns = {c.name for c in storage_db.database.obj.get_columns("expert")}
        assert {"commission_number", "conditions_version", "account_blind"} <= columns
        assert storage_db.database.obj.execute_sql("select status from expert where id = 7").fetchone() == ("draft",)
    finally:
        storage_db.database.close()
