"""Ops: init-db, configuration errors, the logs command, nothing personal in logs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import bot
from handlers.config import Config, ConfigError
from storage import repo
from storage.migrations import LATEST, apply_migrations, current_version

VALID_KEY = Fernet.generate_key().decode()  # the CLI opens sealed columns: a real key

ROOT = Path(bot.ROOT)
DAVE = "U" + "d" * 32


def test_init_db_is_idempotent_and_records_the_schema_version(bot_app):
    assert current_version() == LATEST
    assert apply_migrations() == (LATEST, LATEST)


def test_init_db_command_on_a_fresh_sqlite_file(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
           "DATA_ENCRYPTION_KEYS": VALID_KEY, "SIGNING_KEY": "g", "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    for _ in range(2):
        out = subprocess.run([sys.executable, "bot.py", "init-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert f"schema version {LATEST} → {LATEST}" in out.stdout


@pytest.mark.parametrize("missing", ["LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "DATA_ENCRYPTION_KEYS", "SIGNING_KEY"])
def test_missing_required_setting_is_named_in_one_line(missing):
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": VALID_KEY, "SIGNING_KEY": "g"}
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        Config.from_env(env)


def test_serve_refuses_to_start_without_a_required_setting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LINE_CHANNEL_SECRET": "s",
           "DATA_ENCRYPTION_KEYS": VALID_KEY, "SIGNING_KEY": "g"}
    out = subprocess.run([sys.executable, "bot.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "LINE_CHANNEL_ACCESS_TOKEN" in out.stderr


def test_gunicorn_entry_point_names_a_missing_setting_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LINE_CHANNEL_SECRET": "s",
           "DATA_ENCRYPTION_KEYS": VALID_KEY, "SIGNING_KEY": "g"}
    out = subprocess.run([sys.executable, "-c", "import bot; bot.wsgi_app()"], cwd=tmp_path, env={
        **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "LINE_CHANNEL_ACCESS_TOKEN" in out.stderr, out.stderr


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
    calls = [e for e in entries if e["event"] == "line_api.call"]
    assert calls and all(c["user"] == events[0]["user"] and c["webhook_event_id"] for c in calls), \
        "a reply's line says whose event it answered"
    blob = "\n".join(lines)
    for secret in (DAVE, "鈴木", "花子", "スズキ", "すずき", bot_app.config.channel_access_token, bot_app.config.channel_secret):
        assert secret not in blob


def test_logs_command_filters_by_user_flow_and_level(bot_app):
    bot_app.say(DAVE, "follow")
    other = "U" + "e" * 32
    bot_app.say(other, "follow")
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": bot_app.config.data_dir, "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": VALID_KEY, "SIGNING_KEY": bot_app.config.signing_key}
    out = subprocess.run([sys.executable, "bot.py", "logs", "--user", DAVE], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert entries and all(e["user"] == entries[0]["user"] for e in entries)
    assert {"webhook.event", "line_api.call"} <= {e["event"] for e in entries}, "the replies are the user's lines too"
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
        # The new indexes come with statistics: the planner does not guess until the daily optimize.
        stats = {row[0] for row in storage_db.database.obj.execute_sql("select idx from sqlite_stat1")}
        assert "expert_status" in stats
    finally:
        storage_db.database.close()


def test_log_tail_gives_one_users_new_lines_across_process_files(tmp_path):
    from handlers import logs

    logs.configure("tail-key", None, stdout=False)
    me, other = logs.pseudonym(DAVE), logs.pseudonym("U" + "e" * 32)
    web, worker = tmp_path / "bot-web-1.jsonl", tmp_path / "bot-worker-2.jsonl"
    web.write_text(json.dumps({"ts": "2026-11-26T01:00:00Z", "event": "webhook.event", "user": me}) + "\n"
                   + json.dumps({"ts": "2026-11-26T01:00:01Z", "event": "webhook.event", "user": other}) + "\n")
    worker.write_text(json.dumps({"ts": "2026-11-26T01:00:02Z", "event": "outbox.delivered", "to": me}) + "\n"
                      + '{"ts": "2026-11-26T01:00:03Z", "event": "half a li')  # still being written
    tail = logs.LogTail(tmp_path)
    found, after = tail.since(0, user=DAVE)
    assert [e["event"] for e in found] == ["webhook.event", "outbox.delivered"] and after == 3
    assert tail.since(after, user=DAVE) == ([], 3)
    with worker.open("a") as fh:
        fh.write('ne", "user": "%s"}\n' % me)
    found, after = tail.since(3, user=DAVE)
    assert [e["event"] for e in found] == ["half a line"] and after == 4
    assert [e.get("user") or e.get("to") for e in tail.since(0)[0]] == [me, other, me, me]


def test_log_tail_keeps_only_recent_entries(tmp_path):
    from handlers import logs

    (tmp_path / "bot-web-1.jsonl").write_text("".join(
        json.dumps({"ts": f"2026-11-26T01:00:{i:02d}Z", "event": f"e{i}"}) + "\n" for i in range(30)))
    found, after = logs.LogTail(tmp_path, keep=10).since(0)
    assert after == 30 and [e["event"] for e in found] == [f"e{i}" for i in range(20, 30)]


def test_chat_pages_ops_panel_shows_this_users_log_lines(bot_app):
    import requests

    base = bot_app.config.line_api_base_url
    bot_app.say(DAVE, "follow")
    bot_app.say("U" + "e" * 32, "follow")
    body = requests.get(base + "/_sim/logs", params={"user": DAVE}, timeout=5).json()
    assert body["available"] is True and body["entries"]
    users = {e["user"] for e in body["entries"] if "user" in e}
    assert len(users) == 1, "only this user's lines"
    assert any(e["event"] == "webhook.event" and e["outcome"] for e in body["entries"])
    assert any(e["event"] == "line_api.call" for e in body["entries"]), "the reply, by its request id"
    again = requests.get(base + "/_sim/logs", params={"user": DAVE, "after": body["next"]}, timeout=5).json()
    assert again["entries"] == [] and again["next"] == body["next"]
    assert requests.get(base + "/_sim/logs", params={"user": "nobody"}, timeout=5).status_code == 400
    assert requests.get(base + "/_sim/logs", params={"user": DAVE, "after": "x"}, timeout=5).status_code == 400


def test_logs_follow_yields_only_new_complete_lines_from_every_process(tmp_path):
    """`python bot.py logs -f`: what was there is skipped; new lines of any process file follow."""
    from handlers import logs

    (tmp_path / "bot-web-1.jsonl").write_text(json.dumps({"ts": "2026-11-26T01:00:00Z", "event": "old"}) + "\n")
    follow = logs.follow(tmp_path, poll=0.01)
    with (tmp_path / "bot-web-1.jsonl").open("a") as fh:
        fh.write(json.dumps({"ts": "2026-11-26T01:00:01Z", "event": "new-web"}) + "\n")
    (tmp_path / "bot-worker-2.jsonl").write_text(json.dumps({"ts": "2026-11-26T01:00:02Z", "event": "new-worker"})
                                                 + "\n" + '{"ts": "2026-11-26T01:00:03Z", "event": "half')
    assert [next(follow)["event"] for _ in range(2)] == ["new-web", "new-worker"]
