"""Configuration from the environment (a ``.env`` file is read if present, by python-dotenv).

Names and defaults are the README's "Configuration" table. ``serve`` refuses to start with
one line naming a missing required setting.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dotenv import dotenv_values, load_dotenv

ROOT = Path(__file__).resolve().parents[1]  # the project directory (bot.py's)

REQUIRED = (
    "LINE_CHANNEL_SECRET",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "DATA_ENCRYPTION_KEYS",
    "SIGNING_KEY",
)


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Config:
    channel_secret: str
    channel_access_token: str
    data_encryption_keys: tuple[str, ...]
    signing_key: str
    line_api_base_url: str = "https://api.line.me"
    line_data_api_base_url: str = "https://api-data.line.me"
    redis_url: str | None = None  # None → embedded Redis under data_dir
    database_url: str = "sqlite:///var/bot.db"
    data_dir: str = "var"
    program_config: str = "program.toml"
    public_base_url: str = "http://127.0.0.1:8000"
    port: int = 8000
    line_timeout: float = 5.0  # seconds, every LINE API call
    lock_wait: float = 1.5  # seconds to wait for a user's lock before deferring
    process_name: str = "web"
    log_stdout: bool = True  # LOG_STDOUT=0: files only (the local demo keeps the terminal quiet)
    # 国土地理院's address search and reverse geocoder (handlers.geocoder); the demo points them at the simulator.
    geocoder_url: str = "https://msearch.gsi.go.jp/address-search/AddressSearch"
    reverse_geocoder_url: str = "https://mreversegeocoder.gsi.go.jp/reverse-geocoder/LonLatToAddress"
    geocoder_timeout: float = 2.0  # seconds to connect and to read: the call runs inside the user's event

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        for name in REQUIRED:
            if not env.get(name, "").strip():
                raise ConfigError(f"必須の設定 {name} がありません (missing required setting {name})")
        port = int(env.get("PORT", "8000"))
        data_dir = env.get("DATA_DIR", "var")
        return cls(
            channel_secret=env["LINE_CHANNEL_SECRET"].strip(),
            channel_access_token=env["LINE_CHANNEL_ACCESS_TOKEN"].strip(),
            data_encryption_keys=_fernet_keys(env["DATA_ENCRYPTION_KEYS"]),
            signing_key=env["SIGNING_KEY"].strip(),
            line_api_base_url=env.get("LINE_API_BASE_URL", cls.line_api_base_url).rstrip("/"),
            line_data_api_base_url=env.get("LINE_DATA_API_BASE_URL", cls.line_data_api_base_url).rstrip("/"),
            redis_url=_redis_url(env.get("REDIS_URL")),
            database_url=env.get("DATABASE_URL") or f"sqlite:///{Path(data_dir, 'bot.db')}",
            data_dir=data_dir,
            program_config=env.get("PROGRAM_CONFIG", "program.toml"),
            public_base_url=(env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            port=port,
            log_stdout=env.get("LOG_STDOUT", "1") not in ("0", "false", "no"),
            geocoder_url=env.get("GEOCODER_URL") or cls.geocoder_url,
            reverse_geocoder_url=env.get("REVERSE_GEOCODER_URL") or cls.reverse_geocoder_url,
            geocoder_timeout=_seconds("GEOCODER_TIMEOUT", env.get("GEOCODER_TIMEOUT"), cls.geocoder_timeout),
        )

    def with_(self, **changes: object) -> "Config":
        return replace(self, **changes)  # type: ignore[arg-type]


def _fernet_keys(value: str) -> tuple[str, ...]:
    """Check the keys now: every personal field is sealed with them, so a bad one must stop start-up
    in one line (naming its position, never echoing it), not fail the first read of a name."""
    from storage.crypto import FieldCrypto

    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    try:
        FieldCrypto(keys, "check")
    except ValueError as exc:
        raise ConfigError(f"設定 DATA_ENCRYPTION_KEYS が正しくありません ({exc})") from None
    return keys


def _seconds(name: str, value: str | None, default: float) -> float:
    """A positive number of seconds, checked at start-up so a typo is one line, not a failure later."""
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 60:
        raise ConfigError(f"設定 {name} は0より大きく60以下の秒数にしてください (got {value!r})")
    return seconds


def _redis_url(url: str | None) -> str | None:
    """Check the URL's form now, so a typo is one line at start-up, not a 503 on every event."""
    url = (url or "").strip()
    if not url:
        return None
    from storage.redis_urls import RedisUrlError, check_url

    try:
        check_url(url)
    except RedisUrlError as exc:
        raise ConfigError(f"設定 REDIS_URL の形式が正しくありません ({exc})") from None
    return url


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (python-dotenv's syntax), without touching os.environ.

    Values are taken literally: no ``${VAR}`` expansion, so a secret with a
    ``$`` in it stays as written.
    """
    return {k: v for k, v in dotenv_values(path, interpolate=False, encoding="utf-8").items() if v is not None}


def load_dotenv_if_present(path: str | Path = ".env") -> None:
    """Read an env file (``.env`` of the current directory) into os.environ, never overriding what is set."""
    if Path(path).is_file():
        load_dotenv(path, override=False, interpolate=False, encoding="utf-8")
