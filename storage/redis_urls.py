"""The forms ``REDIS_URL`` takes, parsed and checked once (a typo is one line at start-up).

* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…``,
  ``unix:///path/to/redis.sock[?db=N]`` — one server, exactly as redis-py
  reads them.
* ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db][?sentinel_password=…]``
  — the primary of ``service`` as the sentinels name it, e.g.
  ``redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3/mymaster/0``.
  A host without a port uses 26379; ``db`` defaults to 0; IPv6 hosts go in
  brackets. The password (and user) are the data nodes'; sentinels that
  require a password of their own get ``?sentinel_password=…``.
  Percent-encode ``@ : / , ?`` inside a password.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import redis

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service-name[/db]"


class RedisUrlError(ValueError):
    """``REDIS_URL`` is malformed; the message names it and shows the expected form."""


# --- URLs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def _redacted(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = userinfo.split(":", 1)[0] + ":***@" + hosts
    if "sentinel_password=" in rest:
        rest = rest.split("sentinel_password=", 1)[0] + "sentinel_password=***"
    return scheme + sep + rest


def _bad(url: str, reason: str) -> RedisUrlError:
    return RedisUrlError(f"REDIS_URL {reason} (expected {SENTINEL_FORM}; got {_redacted(url)})")


def _parse_host(url: str, item: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port``; a missing port is Sentinel's 26379."""
    if item.startswith("["):
        host, close, rest = item[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise _bad(url, f"has a malformed IPv6 host {item!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise _bad(url, f"has an empty host in {item!r}")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"has a bad port in {item!r}")
    return host, int(port_text)


def _parse_query(url: str, query: str) -> str | None:
    """The only option the URL carries is the sentinels' own password (percent-decoded like the
    password before the ``@``: a ``+`` stays a ``+``)."""
    options = dict(part.partition("=")[::2] for part in query.split("&") if part)
    unknown = sorted(set(options) - {"sentinel_password"})
    if unknown:
        raise _bad(url, f"has unknown options {', '.join(unknown)} (only sentinel_password is allowed)")
    return unquote(options.get("sentinel_password", "")) or None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse ``redis+sentinel://…``; raise ``RedisUrlError`` naming REDIS_URL if it is malformed."""
    if not is_sentinel_url(url):
        raise _bad(url, "is not a redis+sentinel:// URL")
    rest, _, query = url.split("://", 1)[1].partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon and password_text else None
    if not hostlist:
        raise _bad(url, "names no sentinel host")
    hosts = tuple(_parse_host(url, item.strip()) for item in hostlist.split(","))
    parts = [unquote(p) for p in path.split("/")] if slash else []
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash
    if not parts or not parts[0]:
        raise _bad(url, "names no service (the sentinels' master name, e.g. mymaster)")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise _bad(url, f"has a bad database {'/'.join(parts[1:])!r} (a number, e.g. /mymaster/0)")
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelUrl(hosts, parts[0], db, username, password, _parse_query(url, query))


def check_url(url: str) -> None:
    """Raise ``RedisUrlError`` (naming REDIS_URL) unless ``url`` is a form ``client_for`` accepts."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    try:
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves parse_url unannotated
    except ValueError as exc:
        raise RedisUrlError(f"REDIS_URL is malformed: {exc} (or use {SENTINEL_FORM}; got {_redacted(url)})") from None


def sentinel_url(hosts: list[tuple[str, int]], service: str, db: int = 0, password: str | None = None) -> str:
    """Build the URL form documented above (for tests, the chaos run and the README)."""
    auth = f":{quote(password, safe='')}@" if password else ""
    nodes = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)
    return f"{SENTINEL_SCHEME}://{auth}{nodes}/{quote(service, safe='')}/{db}"
