"""Personal data at rest: sealed in SQL, cleared from the outbox, absent from Redis and the logs.

The scan reads bytes — the SQLite file and its WAL, a ``pg_dump``, every
Redis value read by its type (and as ``DUMP`` serialises it, what an RDB
holds), every log file — never the ORM, which would decrypt what it reads.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import bot
from storage import db as storage_db
from storage import repo, resealing, sealed
from storage.crypto import FieldCrypto
from storage.files import EncryptedFileStore
from storage.migrations import apply_migrations
from storage.models import Dispatch, Expert, Outbox, Report
from tests.actors import REVIEWER, SEC, institution_with_reviewer, near, secretariat, send_location
from tests.helpers import TOKYO
from tests.test_journey import EMAIL, EXPERT, register
from tests.test_reports import ANSWERS

# What the registration script of tests.test_journey types, in every form it could be stored in.
SECRETS = [
    "09024681357", "+819024681357", "090-2468-1357", "9024681357",  # phone
    EMAIL, "hanako.suzuki",  # e-mail
    "丸の内1-1-1", "千代田区丸の内",  # street address
    "1980-04-01", "昭和55年4月1日", "1980年4月1日", "S55.4.1",  # birth date, ISO and 和暦
    "鈴木", "花子", "スズキ", "ハナコ", "すずき", "はなこ", "ｽｽﾞｷ",  # name and kana
]
BUSINESS_ADDRESS = "東京都港区芝公園4-2-8"


def forms(secret: str) -> list[bytes]:
    """The bytes a secret would have in a file: UTF-8, and JSON's \\u escapes."""
    escaped = secret.encode("ascii", "backslashreplace").replace(b"\\u", b"\\\\u")
    return [secret.encode("utf-8"), secret.encode("unicode_escape"), escaped]


def leaks(blob: bytes) -> list[str]:
    return [s for s in SECRETS if any(f in blob for f in forms(s))]


def commissioned_through_line(bot_app) -> Expert:
    """Registration (every answer typed), both approvals, consent and acceptance: all through LINE."""
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "秘匿商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    expert = Expert.get(Expert.status == "pending_institution")
    bot_app.drain()
    bot_app.say(REVIEWER, "postback", data=f"a=inst_approve&id={expert.id}")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    bot_app.drain()
    bot_app.text(SEC, f"/approve {expert.id}")
    bot_app.say(SEC, "postback", data="c=yes")
    bot_app.drain()
    bot_app.say(EXPERT, "postback", data="a=consent&ans=yes&v=2026-04")
    bot_app.say(EXPERT, "postback", data="a=accept")
    bot_app.text(EXPERT, "鈴木　花子")
    bot_app.say(EXPERT, "postback", data="c=yes")
    bot_app.drain()
    expert = Expert.get_by_id(expert.id)
    assert expert.status == "commissioned"
    return expert


def dispatch_and_report(bot_app, expert: Expert) -> Report:
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社ひみつ工房")
    bot_app.text(REVIEWER, "なし")
    point = near(0)
    bot_app.say(REVIEWER, "location", latitude=point[0], longitude=point[1], address=BUSINESS_ADDRESS)
    bot_app.text(REVIEWER, expert.profile["expertise"][0])
    bot_app.text(REVIEWER, f"No.{expert.id}")
    soon = datetime.now(TOKYO) + timedelta(minutes=3)
    if soon.date() != datetime.now(TOKYO).date():
        pytest.skip("the dispatch must be today in Tokyo; the day ends in 3 minutes")
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": soon.strftime("%Y-%m-%dT%H:%M")})
    assert "依頼しました" in bot_app.say(REVIEWER, "postback", data="c=yes")[0]
    dispatch = Dispatch.get()
    bot_app.drain()
    bot_app.say(EXPERT, "postback", data=f"a=dsp_accept&id={dispatch.id}")
    bot_app.text(EXPERT, "チェックイン")
    start_ms = int(time.time() * 1000)
    send_location(bot_app, EXPERT, near(40), start_ms)
    bot_app.text(EXPERT, "チェックアウト")
    send_location(bot_app, EXPERT, near(35, 90), start_ms + 90 * 60 * 1000)
    for answer in ANSWERS:
        bot_app.text(EXPERT, answer)
    bot_app.text(EXPERT, "90分")
    bot_app.text(EXPERT, "なし")
    bot_app.text(EXPERT, "なし")
    bot_app.text(EXPERT, "送信")
    bot_app.drain()
    report = Report.get()
    assert report.status == "submitted"
    return report


def database_bytes(bot_app, db_kind: str) -> bytes:
    url = bot_app.config.database_url
    if db_kind == "sqlite":
        path = url.removeprefix("sqlite:///")
        return b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    pg_dump = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump")) or [shutil.which("pg_dump")]
    out = subprocess.run([pg_dump[-1], "--data-only", url], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def redis_values(client, key: bytes) -> list[bytes]:
    """A key's values read by its type, as the server holds them: DUMP alone is no proof, since the
    RDB encoding LZF-compresses any string over 20 bytes and plaintext can hide in the compression."""
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [b for pair in client.hgetall(key).items() for b in pair]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return sorted(client.smembers(key))
    if kind == b"zset":
        return list(client.zrange(key, 0, -1))
    if kind == b"stream":
        return [b for _id, entry in client.xrange(key) for pair in entry.items() for b in (_id, *pair)]
    return []  # gone meanwhile (expired)


def redis_bytes(bot_app) -> bytes:
    """Every key of the bot's Redis database, its values read by type, and DUMP's serialisation (the RDB).

    RQ keeps a job's arguments zlib-compressed (not encrypted) in the job hash's ``data``
    field, so those are decompressed too: compression hides nothing from whoever reads a dump."""
    client = bot_app.rt.worker_redis
    parts = []
    for key in client.scan_iter(count=500):
        parts.append(key)
        parts.extend(redis_values(client, key))
        parts.append(client.dump(key) or b"")
        if key.startswith(b"rq:job:") and client.type(key) == b"hash":
            data = client.hget(key, "data")
            parts.append(zlib.decompress(data) if data else b"")
    return b"\n".join(parts)


def log_bytes(bot_app) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(bot_app.log_dir).glob("*")) if p.is_file())


def test_nothing_personal_at_rest_after_registration_dispatch_and_report(bot_app, db_kind):
    expert = commissioned_through_line(bot_app)
    dispatch_and_report(bot_app, expert)
    # What the expert typed is still there for the code that reads it…
    expert = Expert.get_by_id(expert.id)
    assert (expert.family_name, expert.profile["email"]) == ("鈴木", EMAIL)
    # …and nowhere in the bytes (the scan itself finds a planted name in any of its forms).
    assert leaks("鈴木".encode()) == leaks(b"\\u9234\\u6728") == leaks("\\u9234".encode() + b"\\u6728") == ["鈴木"]
    stored = database_bytes(bot_app, db_kind)
    assert len(stored) > 10_000 and b"expert" in stored, "the scan reads the real database"
    assert leaks(stored) == []
    in_redis, logged = redis_bytes(bot_app), log_bytes(bot_app)
    # The scans scan something: the conversations' sessions and the worker's queues, the webhook's log lines.
    assert len(in_redis) > 1_000 and b"rq:" in in_redis and bot_app.rt.worker_redis.dbsize() > 0, "Redis was read"
    assert len(logged) > 1_000 and b'"event"' in logged, "the logs were read"
    assert leaks(in_redis) == []
    assert leaks(logged) == []


def test_the_outbox_keeps_no_delivered_payload(bot_app):
    commissioned_through_line(bot_app)
    rows = list(Outbox.select())
    assert rows and all(r.status == "sent" for r in rows)
    assert all(r.messages is None for r in rows), "delivered messages are cleared"
    assert all(r.to and r.reason and r.uuid and r.sent_at for r in rows), "the metadata stays"


def test_people_are_found_by_whole_tokens_of_name_kana_phone_and_email(bot_app):
    expert = commissioned_through_line(bot_app)
    for typed in ("鈴木", "花子", "鈴木花子", "鈴木 花子", "スズキ", "すずき　はなこ", "ｽｽﾞｷﾊﾅｺ"):
        assert repo.experts_matching("name", typed) == [expert.id], typed
    assert repo.experts_matching("name", "鈴") == [], "a fragment is not a token"
    for typed in ("090-2468-1357", "09024681357", "+819024681357", "０９０２４６８１３５７"):
        assert repo.experts_matching("phone", typed) == [expert.id], typed
    assert repo.experts_matching("email", EMAIL.upper()) == [expert.id]
    assert f"No.{expert.id}" in bot_app.text(SEC, "/find すずき")[0]
    assert "一致する申請はありません" in bot_app.text(SEC, "/find 鈴")[0]


# --- upgrading a database written before sealing, and rotating keys ------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "bot.py", *args], cwd=bot.ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def env_for(tmp_path: Path, url: str, keys: list[str]) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DATABASE_URL": url, "LINE_CHANNEL_SECRET": "s",
            "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": ",".join(keys), "SIGNING_KEY": "sign"}


def plaintext_rows(n: int) -> None:
    """Experts as a database from before sealing held them: names and drafts in plaintext."""
    param = storage_db.database.obj.param
    for i in range(n):
        user = repo.ensure_user(f"U{i:032x}")
        storage_db.database.execute_sql(
            f'INSERT INTO "expert" ("user_id", "status", "draft", "family_name", "given_name", "kana", '
            f'"created_at", "updated_at") VALUES ({", ".join([param] * 8)})',
            (user.id, "draft", '{"email": "hanako.suzuki@example.com", "phone": "+819024681357"}', "鈴木", "花子",
             "スズキ　ハナコ", "2026-01-01 00:00:00", "2026-01-01 00:00:00"))


def raw(column: str) -> list[str]:
    return [r[0] for r in storage_db.database.execute_sql(f'SELECT "{column}" FROM "expert" ORDER BY "id"').fetchall()]


def test_an_old_database_is_sealed_in_batches_resumably_and_idempotently(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    key = Fernet.generate_key().decode()
    sealed.configure(FieldCrypto([key], "sign"))
    storage_db.bind(url)
    apply_migrations()
    plaintext_rows(5)
    assert raw("family_name") == ["鈴木"] * 5
    env = env_for(tmp_path, url, [key])
    dry = cli(env, "data", "seal", "--dry-run", "--batch", "2")
    assert dry.returncode == 0, dry.stderr
    assert "expert.draft: 5 scanned, 5 would be sealed" in dry.stdout and raw("family_name") == ["鈴木"] * 5
    done = cli(env, "data", "seal", "--batch", "2")
    assert "expert.family_name: 5 scanned, 5 sealed" in done.stdout, done.stdout + done.stderr
    assert all(sealed.is_sealed(v) for v in raw("family_name") + raw("draft") + raw("kana"))
    assert "5 scanned, 0 sealed" in cli(env, "data", "seal").stdout, "a second run has nothing to do"
    expert = Expert.select().order_by(Expert.id).first()
    assert (expert.family_name, expert.kana, expert.draft["email"]) == ("鈴木", "スズキ　ハナコ", EMAIL)
    storage_db.database.close()


def test_keys_rotate_moves_every_value_nested_token_and_photo_to_the_newest_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'rot.db'}"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_crypto = FieldCrypto([old], "sign")
    sealed.configure(old_crypto)
    storage_db.bind(url)
    apply_migrations()
    files = EncryptedFileStore(tmp_path / "files", old_crypto)
    photo = files.put(b"\xff\xd8\xff photo bytes", "image/jpeg")
    for i in range(3):
        user = repo.ensure_user(f"U{i:032x}")
        Expert.create(user=user, family_name="鈴木", given_name="花子", kana="スズキ　ハナコ",
                      draft={"account_number_enc": old_crypto.encrypt("1234567"), "photo_face": photo})
    env = env_for(tmp_path, url, [new, old])
    dry = cli(env, "keys", "rotate", "--dry-run", "--batch", "2")
    assert dry.returncode == 0, dry.stderr
    assert "expert.draft: 3 scanned, 3 would move to the newest key" in dry.stdout
    assert "files: 1 scanned, 1 would move" in dry.stdout
    done = cli(env, "keys", "rotate", "--batch", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "older key(s) can now be removed" in done.stdout
    # Only the new key is needed now: every value, the nested bank number and the photo.
    only_new = FieldCrypto([new], "sign")
    sealed.configure(only_new)
    for expert in Expert.select():
        assert (expert.family_name, expert.kana) == ("鈴木", "スズキ　ハナコ")
        assert only_new.decrypt(expert.draft["account_number_enc"]) == "1234567"
    assert EncryptedFileStore(tmp_path / "files", only_new).get(photo) == (b"\xff\xd8\xff photo bytes", "image/jpeg")
    assert resealing.left_under_old_keys(EncryptedFileStore(tmp_path / "files", only_new)) == 0
    again = cli(env_for(tmp_path, url, [new]), "keys", "rotate")
    assert again.returncode == 0 and "0 moved" in again.stdout
    storage_db.database.close()


def racing(monkeypatch, model, column: str, change) -> list[int]:
    """Make ``change(row_id)`` happen to the first row of ``model.column`` just after a batch was read
    and before it is written back: an edit by the running bot in the middle of a pass."""
    real = resealing._raw_rows
    changed: list[int] = []

    def read_then_edit(m, field, batch):
        for rows in real(m, field, batch):
            if m is model and field.column_name == column and not changed:
                change(rows[0][0])
                changed.append(rows[0][0])
            yield rows

    monkeypatch.setattr(resealing, "_raw_rows", read_then_edit)
    return changed


def set_raw(row_id: int, column: str, value: str) -> None:
    param = storage_db.database.obj.param
    storage_db.database.execute_sql(f'UPDATE "expert" SET "{column}" = {param} WHERE "id" = {param}', (value, row_id))


def raw_of(row_id: int, column: str) -> str:
    param = storage_db.database.obj.param
    return storage_db.database.execute_sql(f'SELECT "{column}" FROM "expert" WHERE "id" = {param}', (row_id,)).fetchone()[0]


def test_keys_rotate_never_reverts_a_value_changed_while_it_ran(database, monkeypatch):
    """The pass reads a batch, then writes it: a name changed in between (here by a process still on
    the old key) is neither reverted nor lost; it is reported as left under the old key, and the
    next run moves it."""
    old_key, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = FieldCrypto([old_key], "sign")
    sealed.configure(old)
    experts = [Expert.create(user=repo.ensure_user(f"U{i:032x}"), family_name="鈴木", draft={}) for i in range(3)]
    both = FieldCrypto([new, old_key], "sign")
    sealed.configure(both)
    edited = racing(monkeypatch, Expert, "family_name", lambda row_id: set_raw(row_id, "family_name", old.encrypt("佐藤")))

    [tally] = [t for t in resealing.rotate(batch=2) if t.what == "expert.family_name"]
    assert edited == [experts[0].id]
    assert (tally.changed, tally.skipped) == (2, 1), "the edited row is skipped, not written back"
    assert "1 changed meanwhile" in tally.line("moved")
    assert Expert.get_by_id(experts[0].id).family_name == "佐藤", "the edit survives"
    assert not both.under_newest(raw_of(experts[0].id, "family_name"))
    assert [Expert.get_by_id(e.id).family_name for e in experts[1:]] == ["鈴木", "鈴木"]
    assert resealing.left_under_old_keys() == 1, "reported as still under an old key"

    monkeypatch.undo()
    [tally] = [t for t in resealing.rotate(batch=2) if t.what == "expert.family_name"]
    assert (tally.changed, tally.skipped) == (1, 0), "a rerun finishes it"
    assert resealing.left_under_old_keys() == 0
    sealed.configure(FieldCrypto([new], "sign"))
    assert [Expert.get_by_id(e.id).family_name for e in experts] == ["佐藤", "鈴木", "鈴木"]


def test_data_seal_never_reverts_a_value_changed_while_it_ran(database, monkeypatch):
    crypto = FieldCrypto([Fernet.generate_key().decode()], "sign")
    sealed.configure(crypto)
    plaintext_rows(3)
    ids = [e.id for e in Expert.select(Expert.id).order_by(Expert.id)]
    # A process from before sealing (an old worker still running) writes a new plaintext name meanwhile.
    racing(monkeypatch, Expert, "family_name", lambda row_id: set_raw(row_id, "family_name", "佐藤"))
    [tally] = [t for t in resealing.seal_plain(batch=2) if t.what == "expert.family_name"]
    assert (tally.changed, tally.skipped) == (2, 1)
    assert raw_of(ids[0], "family_name") == "佐藤", "not reverted to the sealed old name"
    monkeypatch.undo()
    [tally] = [t for t in resealing.seal_plain() if t.what == "expert.family_name"]
    assert (tally.changed, tally.skipped) == (1, 0)
    assert all(sealed.is_sealed(v) for v in raw("family_name"))
    assert [Expert.get_by_id(i).family_name for i in ids] == ["佐藤", "鈴木", "鈴木"]


def test_bot_py_names_every_command_of_the_cli():
    """The entry point's docstring is the command list an operator reads first: purge, data seal
    and keys rotate (what handles personal data) are in it, as is every other command."""
    import click

    from handlers.cli import cli as group

    def leaves(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        if isinstance(command, click.Group):
            return [leaf for name, sub in command.commands.items() for leaf in leaves(sub, (*path, name))]
        return [path]

    lines = [line.strip() for line in (bot.__doc__ or "").splitlines() if line.strip().startswith("python bot.py ")]
    for path in leaves(group):
        assert any(line.split()[2] == path[0] and all(part in line.split() for part in path[1:]) for line in lines), \
            f"python bot.py {' '.join(path)} is missing from bot.py's docstring"
    for named in ("python bot.py purge [--dry-run]", "python bot.py data seal", "python bot.py keys rotate"):
        assert named in bot.__doc__


def test_an_event_waiting_for_the_worker_is_sealed_in_redis(bot_app):
    """A busy user's event goes to the worker queue; what they typed must not sit in Redis in the clear."""
    user = "U" + "de" * 16
    bot_app.say(user, "follow")
    lock = bot_app.rt.worker_redis.lock(bot_app.rt.keys.lock(user), timeout=30)
    assert lock.acquire()
    assert bot_app.post([bot_app.event(user, "text", text="鈴木 花子 09024681357")]).status_code == 200
    waiting = redis_bytes(bot_app)
    assert b"rq:job:" in waiting, "the event is queued for the worker"
    assert leaks(waiting) == []
    lock.release()
    bot_app.drain()
    assert any("同意" in t for t in bot_app.texts_since(user, 0)), "and it still runs"
    assert leaks(redis_bytes(bot_app)) == []


def test_the_prefectures_and_fields_covered_stay_plain_and_are_filled_for_older_databases(bot_app):
    from storage.migrations import LATEST
    from storage.models import ExpertArea, ExpertField, SchemaVersion

    expert = commissioned_through_line(bot_app)
    areas = sorted(a.prefecture for a in ExpertArea.select().where(ExpertArea.expert == expert.id))
    fields = sorted(f.field for f in ExpertField.select().where(ExpertField.expert == expert.id))
    assert areas == sorted(expert.profile["areas"]) and fields == sorted(expert.profile["expertise"])
    raw = storage_db.database.execute_sql('SELECT "prefecture" FROM "expertarea"').fetchall()
    assert sorted(r[0] for r in raw) == areas, "plain in SQL: matching needs no decryption"
    # A database from before these rows: the migration fills them from the sealed profiles.
    ExpertArea.delete().execute()
    ExpertField.delete().execute()
    SchemaVersion.delete().where(SchemaVersion.version >= 8).execute()  # v8 made these rows
    assert apply_migrations() == (7, LATEST)
    assert ExpertArea.select().count() == len(areas) and ExpertField.select().count() == len(fields)
