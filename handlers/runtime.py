"""Everything a process needs at run time, built once from the configuration.

The app factory, the RQ worker and the CLI each build one ``Runtime``;
background jobs find theirs with ``current()`` (RQ jobs are plain
functions, called with nothing but their arguments).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from rq import Queue

from handlers.config import Config
from handlers.database import open_database
from handlers.geocoder import GsiGeocoder
from program import Program, load_program
from storage.crypto import FieldCrypto, LinkSigner
from storage.files import EncryptedFileStore, signed_url
from storage.redis_conn import EmbeddedRedis, webhook_client, worker_client
from storage.sessions import KeyBuilder
from storage.user_gate import UserGate

if TYPE_CHECKING:  # the SDK's models take ~2 s to import: CLI commands that never call LINE skip them
    from handlers.line_api import LineApi

DEDUPE_TTL = 3 * 24 * 3600  # LINE redelivers for a while; SQL guards forever
LOCK_LEASE = 3.0  # seconds; renewed while the work runs, so a dead holder frees the user quickly
LOCK_SLEEP = 0.005  # the default 0.1 s gave p99 97 ms under load

OUTBOX_QUEUE = "outbox"
EVENTS_QUEUE = "events"


APPLICATION_SUBJECT = "application:"  # signed page links: application:<expert id>:<viewer LineUser id>


@dataclass
class Runtime:
    config: Config
    program: Program
    redis: Redis  # request path: fast-failing, no retries
    worker_redis: Redis  # RQ and CLI: long socket timeouts
    line: LineApi
    crypto: FieldCrypto
    files: EncryptedFileStore
    links: LinkSigner
    geocoder: GsiGeocoder  # typed addresses → pins and pins → addresses for the flows (Context.geocoder)
    keys: KeyBuilder = field(default_factory=KeyBuilder)
    outbox_retry_intervals: tuple[int, ...] = (2, 10, 30, 120, 600)
    embedded_redis: EmbeddedRedis | None = None

    def __post_init__(self) -> None:
        self.gate = UserGate(self.redis, self.keys, DEDUPE_TTL, LOCK_LEASE, LOCK_SLEEP)

    def queue(self, name: str, *, for_worker: bool = False) -> Queue:
        return Queue(name, connection=self.worker_redis if for_worker else self.redis)

    def page_for(self, expert_id: int, viewer_id: int, expires_in: int = 900) -> str:
        """A short-lived signed URL of one application's page, for one viewer (``handlers.application_page``)."""
        token = self.links.sign(f"{APPLICATION_SUBJECT}{expert_id}:{viewer_id}", expires_in=expires_in)
        return f"{self.config.public_base_url}/applications/{token}"

    def link_for(self, file_id: str, expires_in: int = 900) -> str:
        """A short-lived signed URL for a stored file (reviewers' photo links, letters)."""
        return signed_url(self.config.public_base_url, self.links, file_id, expires_in)

    @property
    def log_dir(self) -> Path:
        return Path(self.config.data_dir, "log")


_current: Runtime | None = None


def install(rt: Runtime) -> Runtime:
    global _current
    _current = rt
    return rt


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("runtime not built: call handlers.runtime.build() first")
    return _current


def build(config: Config, *, redis_url: str | None = None, start_embedded: bool = True) -> Runtime:
    """Wire Redis, the database and LINE from ``config``; install it as current."""
    embedded = None
    url = redis_url or config.redis_url
    if url is None:
        embedded = EmbeddedRedis(config.data_dir)
        if start_embedded or not embedded.running():
            url = embedded.start()
        else:
            url = embedded.url
    crypto = open_database(config)
    rt = Runtime(
        config=config,
        program=load_program(config.program_config),
        redis=webhook_client(url),
        worker_redis=worker_client(url),
        line=_line_api()(
            config.channel_access_token,
            config.line_api_base_url,
            config.line_data_api_base_url,
            timeout=config.line_timeout,
        ),
        crypto=crypto,
        files=EncryptedFileStore(Path(config.data_dir, "files"), crypto),
        links=LinkSigner(config.signing_key),
        geocoder=GsiGeocoder.from_config(config),
        embedded_redis=embedded,
    )
    return install(rt)


def _line_api() -> type["LineApi"]:
    from handlers.line_api import LineApi

    return LineApi
