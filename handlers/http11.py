"""One HTTP/1.1 request and its response on a kept-alive socket, and nothing more.

``handlers.line_transport`` sends the SDK's JSON calls to LINE through this module.
``http.client`` did the job before, but each reply cost about 0.1 ms of CPU on headers:
it writes them one ``putheader`` at a time and parses the answer's headers with the
``email`` package, a general MIME parser. LINE's answers are small, with a
``Content-Length``, so the request here is one ``sendall`` and the answer's head is
split at its blank line.

It implements what a client of LINE's API meets, and refuses the rest:
- a status line and headers, any number of ``1xx`` answers skipped;
- a body by ``Content-Length``, ``chunked``, or up to the close;
- keep-alive unless the server says ``Connection: close``, answers HTTP/1.0, or
  delimits the body by closing;
- header names and values with CR or LF in them are refused, never sent.

A malformed or cut answer raises ``urllib3.exceptions.ProtocolError``, as the SDK's own
client would. The caller then drops the connection.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from urllib3.exceptions import ProtocolError

MAX_HEAD_BYTES = 65536
MAX_HEADERS = 100
_NO_BODY_STATUSES = frozenset({204, 304})


class Headers(Mapping[str, str]):
    """An answer's headers: case-insensitive lookups, the first value of a repeated name; what
    the SDK reads (``get``, ``dict(...)``, ``str``) and what ``LineApiError`` keeps."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]  # Mapping's overloads
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self.pairs:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._first)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass
class Answer:
    status: int
    reason: str
    headers: Headers
    data: bytes
    keep_alive: bool  # the connection may carry the next request


class Connection:
    """A socket and what was read from it but not yet used."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def exchange(self, method: str, host: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Send one request and read its whole answer."""
        self.sock.sendall(_request_head(method, host, path, headers, body) + (body or b""))
        while True:
            status, reason, version, answer_headers = self._read_head()
            if not 100 <= status < 200:
                break  # a 1xx (100 Continue, 103 Early Hints) is followed by the real answer
        data, delimited = self._read_body(method, status, answer_headers)
        connection = (answer_headers.get("connection") or "").lower()
        keep_alive = (delimited and version == "HTTP/1.1" and "close" not in connection and not self._buffer)
        return Answer(status, reason, answer_headers, data, keep_alive)

    # -- reading -------------------------------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError("the server closed the connection before the answer was complete")
        self._buffer += chunk

    def _read_head(self) -> tuple[int, str, str, Headers]:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head, self._buffer = bytes(self._buffer[:end]), self._buffer[end + 4:]
                break
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("the answer's head is too long")
            self._fill()
        lines = head.decode("iso-8859-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and pairs:  # an obsolete folded continuation
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            pairs.append((name, value.strip()))
        if len(pairs) > MAX_HEADERS:
            raise ProtocolError("too many headers")
        return int(code), reason.strip(), version, Headers(pairs)

    def _read_body(self, method: str, status: int, headers: Headers) -> tuple[bytes, bool]:
        """The body, and whether its end was known without the connection closing."""
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            return b"", True
        if "chunked" in (headers.get("transfer-encoding") or "").lower():
            return self._read_chunked(), True
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"a malformed Content-Length: {length[:40]!r}")
            return self._take(int(length)), True
        while True:  # delimited by the close
            chunk = self.sock.recv(65536)
            if not chunk:
                data, self._buffer = bytes(self._buffer), bytearray()
                return data, False
            self._buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        return data

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("a chunk's size line is too long")
            self._fill()
        line, self._buffer = bytes(self._buffer[:end]), self._buffer[end + 2:]
        return line

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"a malformed chunk size: {size_text[:40]!r}") from None
            if size == 0:
                while self._line():  # trailers, up to the blank line
                    pass
                return bytes(body)
            body += self._take(size)
            if self._take(2) != b"\r\n":
                raise ProtocolError("a chunk not followed by CRLF")


def _request_head(method: str, host: str, path: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if not any(name.lower() == "accept-encoding" for name in headers):
        lines.append("Accept-Encoding: identity")  # a compressed answer is not decoded here
    for name, value in headers.items():
        if name.lower() in ("host", "content-length"):
            continue  # written here, from the URL and the body
        value = str(value)
        if any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"refused to send a header with a line break: {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("iso-8859-1")
