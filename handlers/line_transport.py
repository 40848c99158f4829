"""The SDK's HTTP transport, kept alive: a reply costs a third of the CPU it did through urllib3.

line-bot-sdk v3 is an OpenAPI-generated client. ``ApiClient`` builds each call (path,
headers, the bearer token, the JSON body) and hands it to its ``rest_client``, which by
default is urllib3's ``PoolManager``. For one small JSON request urllib3 adds a pool, a
``Retry`` and a ``Timeout`` object, two header dictionaries and a response wrapper.
Measured on this project's reply, one call cost 706 µs of CPU through urllib3 and 357 µs
through a kept-alive ``http.client`` connection; the reply is the largest single cost of a
webhook event. The request is now written in one piece and the answer's head is split
without the ``email`` parser (``handlers.http11``), about 0.1 ms less again.

:class:`KeepAliveRest` is a drop-in ``rest_client``. It sends the SDK's JSON calls over one
persistent connection per thread and host, and hands everything else (forms, uploads, a
proxy) back to the SDK's own client.

What it keeps from urllib3, on purpose:
- certificates are verified (``ssl.create_default_context``, or the configuration's CA
  file), and the host name is checked;
- the SDK's ``_request_timeout`` (connect, read) applies to every call;
- no silent retry: a call is sent once. A kept-alive connection the server closed while
  idle is noticed *before* it is reused (the socket reads as closed, which is what urllib3's
  ``is_connection_dropped`` checks), so a reply token is never spent twice;
- failures surface as the SDK's ``ApiException`` (an HTTP status) or as ``OSError`` /
  ``urllib3.exceptions.HTTPError`` (no answer); ``handlers.line_api`` maps them to
  ``LineApiError``.
"""
from __future__ import annotations

import functools
import json
import select
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from linebot.v3.messaging import rest
from linebot.v3.messaging.exceptions import (
    ApiException,
    ForbiddenException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)

from handlers import http11

# A connection idle longer than this is closed rather than reused: servers and
# load balancers drop idle keep-alive connections after a while (commonly 60 s
# or more), and opening a new one costs less than finding out the hard way.
IDLE_REUSE_SECONDS = 30.0
_JSON_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


class Response:
    """What the SDK reads of a response: status, reason, body bytes and headers."""

    def __init__(self, status: int, reason: str, data: bytes, headers: http11.Headers):
        self.status = status
        self.reason = reason
        self.data = data
        self.headers = headers

    def getheaders(self) -> http11.Headers:
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


class _Connections(threading.local):
    def __init__(self) -> None:
        self.by_origin: dict[tuple[str, str, int], tuple[http11.Connection, float]] = {}


class KeepAliveRest:
    """``ApiClient.rest_client`` over persistent connections (see the module doc).

    It answers the SDK's ``<method>_request`` calls as the SDK's ``RESTClientObject`` does."""

    def __init__(self, configuration: Any):
        self._fallback = rest.RESTClientObject(configuration)  # the SDK's own client, for anything unusual
        self._proxy = bool(configuration.proxy)
        self._configuration = configuration
        self._local = _Connections()

    @functools.cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """Built on the first HTTPS connection: loading the system's certificates takes ≈ 20 ms,
        which a bot talking to a local platform over plain HTTP (the simulator) never needs."""
        configuration = self._configuration
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def request(self, method: str, url: str, query_params: Any = None, headers: dict[str, str] | None = None,
                body: Any = None, post_params: Any = None, _preload_content: bool = True,
                _request_timeout: Any = None) -> Any:
        method = method.upper()
        headers = dict(headers or {})
        content_type = headers.get("Content-Type", "")
        if (self._proxy or post_params or method not in _JSON_METHODS
                or (content_type and "json" not in content_type.lower())):
            if isinstance(body, bytes) and "json" in content_type.lower():
                body = json.loads(body)  # the SDK's client encodes JSON bodies itself
            return self._fallback.request(method, url, query_params, headers, body, post_params, _preload_content,
                                          _request_timeout)
        # A body already encoded (``LineApi.reply``) is sent as it is.
        payload = body if isinstance(body, bytes) or body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        response = self._send(method, url, headers, payload, _timeouts(_request_timeout))
        if not 200 <= response.status <= 299:
            raise _error(response)
        return response

    def get_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                    _preload_content: bool = True, _request_timeout: Any = None) -> Any:
        return self.request("GET", url, query_params, headers, None, None, _preload_content, _request_timeout)

    def head_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                     _preload_content: bool = True, _request_timeout: Any = None) -> Any:
        return self.request("HEAD", url, query_params, headers, None, None, _preload_content, _request_timeout)

    def options_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                        post_params: Any = None, body: Any = None, _preload_content: bool = True,
                        _request_timeout: Any = None) -> Any:
        return self.request("OPTIONS", url, query_params, headers, body, post_params, _preload_content,
                            _request_timeout)

    def delete_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                       body: Any = None, _preload_content: bool = True, _request_timeout: Any = None) -> Any:
        return self.request("DELETE", url, query_params, headers, body, None, _preload_content, _request_timeout)

    def post_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                     post_params: Any = None, body: Any = None, _preload_content: bool = True,
                     _request_timeout: Any = None) -> Any:
        return self.request("POST", url, query_params, headers, body, post_params, _preload_content,
                            _request_timeout)

    def put_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                    post_params: Any = None, body: Any = None, _preload_content: bool = True,
                    _request_timeout: Any = None) -> Any:
        return self.request("PUT", url, query_params, headers, body, post_params, _preload_content,
                            _request_timeout)

    def patch_request(self, url: str, headers: dict[str, str] | None = None, query_params: Any = None,
                      post_params: Any = None, body: Any = None, _preload_content: bool = True,
                      _request_timeout: Any = None) -> Any:
        return self.request("PATCH", url, query_params, headers, body, post_params, _preload_content,
                            _request_timeout)

    def close(self) -> None:
        """Close this thread's connections."""
        for conn, _ in self._local.by_origin.values():
            conn.close()
        self._local.by_origin.clear()

    # -- one call on a kept-alive connection ------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], payload: bytes | None,
              timeouts: tuple[float | None, float | None]) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        origin = (scheme, parts.hostname or "", port)
        host = parts.netloc.rpartition("@")[2]  # as http.client writes Host: the URL's host[:port]
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn = self._connection(origin, timeouts[0])
        try:
            conn.sock.settimeout(timeouts[1])
            answer = conn.exchange(method, host, path, headers, payload)
        except BaseException:
            self._drop(origin, conn)
            raise
        if answer.keep_alive:
            self._local.by_origin[origin] = (conn, time.monotonic())
        else:
            conn.close()
        return Response(answer.status, answer.reason, answer.data, answer.headers)

    def _connection(self, origin: tuple[str, str, int], connect_timeout: float | None) -> http11.Connection:
        kept = self._local.by_origin.pop(origin, None)
        if kept is not None:
            conn, last_used = kept
            if time.monotonic() - last_used < IDLE_REUSE_SECONDS and not _dropped(conn):
                return conn
            conn.close()
        scheme, host, port = origin
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            # As urllib3 does: a small request is sent at once, not held back by Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._ssl_context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return http11.Connection(sock)

    def _drop(self, origin: tuple[str, str, int], conn: http11.Connection) -> None:
        """Never reuse a connection an exchange failed on: what it would read next is unknown."""
        self._local.by_origin.pop(origin, None)
        conn.close()


def _dropped(conn: http11.Connection) -> bool:
    """True when the server closed the idle connection (the socket reads as ready: EOF or stray bytes)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _timeouts(value: Any) -> tuple[float | None, float | None]:
    """The SDK's ``_request_timeout``: one number for both, or (connect, read)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    if isinstance(value, tuple) and len(value) == 2:
        return value[0], value[1]
    return None, None


def _error(response: Response) -> ApiException:
    """The exception the SDK's own client raises for this status."""
    kinds: dict[int, type[ApiException]] = {401: UnauthorizedException, 403: ForbiddenException,
                                            404: NotFoundException}
    kind = kinds.get(response.status) or (ServiceException if 500 <= response.status <= 599 else ApiException)
    return kind(http_resp=response)
