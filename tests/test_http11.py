"""The HTTP/1.1 exchange under the LINE transport, against answers written byte by byte: how each
body is delimited, when a connection may carry the next request, and what is refused."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from urllib3.exceptions import ProtocolError

from handlers.http11 import Connection


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    client, server = socket.socketpair()
    client.settimeout(2)
    server.settimeout(2)
    yield Connection(client), server
    client.close()
    server.close()


def answer(server: socket.socket, raw: bytes, close: bool = False) -> None:
    server.sendall(raw)
    if close:
        server.shutdown(socket.SHUT_WR)


def sent(server: socket.socket) -> bytes:
    return server.recv(65536)


def test_the_request_is_one_piece_with_host_length_and_the_callers_headers(pair):
    conn, server = pair
    answer(server, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    got = conn.exchange("POST", "api.line.me", "/v2/bot/message/reply",
                        {"Authorization": "Bearer t", "Content-Type": "application/json"}, '{"a":"日本"}'.encode())
    request = sent(server)
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"POST /v2/bot/message/reply HTTP/1.1"
    assert b"Host: api.line.me" in head and b"Authorization: Bearer t" in head
    assert f"Content-Length: {len(body)}".encode() in head and body.decode() == '{"a":"日本"}'
    assert (got.status, got.reason, got.data, got.keep_alive) == (200, "OK", b"{}", True)
    assert got.headers.get("content-type") == got.headers["Content-Type"] == "application/json"
    assert dict(got.headers) == {"Content-Type": "application/json", "Content-Length": "2"}


def test_a_chunked_body_with_extensions_and_trailers_is_joined(pair):
    conn, server = pair
    answer(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    got = conn.exchange("GET", "h", "/", {}, None)
    assert (got.data, got.keep_alive) == (b'{"a":1}', True)


def test_interim_answers_are_skipped_and_folded_headers_joined(pair):
    conn, server = pair
    answer(server, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   b"HTTP/1.1 429 Too Many Requests\r\nX-Note: one\r\n two\r\nContent-Length: 0\r\n\r\n")
    got = conn.exchange("POST", "h", "/", {}, b"{}")
    assert (got.status, got.reason, got.headers["x-note"], got.data) == (429, "Too Many Requests", "one two", b"")


@pytest.mark.parametrize("raw,close", [
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False),
    (b"HTTP/1.1 200 OK\r\n\r\n{}", True),  # delimited by the close
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200", False),  # bytes nobody asked for
])
def test_a_connection_is_not_kept_when_it_cannot_carry_the_next_request(pair, raw, close):
    conn, server = pair
    answer(server, raw, close)
    got = conn.exchange("GET", "h", "/", {}, None)
    assert (got.data, got.keep_alive) == (b"{}", False)


def test_no_body_for_a_head_a_204_or_a_304(pair):
    conn, server = pair
    answer(server, b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n")
    assert conn.exchange("DELETE", "h", "/", {}, None).data == b""
    answer(server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert conn.exchange("HEAD", "h", "/", {}, None).data == b""


@pytest.mark.parametrize("raw", [
    b"",  # closed before answering
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # cut short
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
])
def test_a_malformed_or_cut_answer_is_a_protocol_error(pair, raw):
    conn, server = pair
    answer(server, raw, close=True)
    with pytest.raises(ProtocolError):
        conn.exchange("GET", "h", "/", {}, None)


def test_a_header_with_a_line_break_is_never_sent(pair):
    conn, server = pair
    with pytest.raises(ValueError):
        conn.exchange("POST", "h", "/", {"X-Line-Retry-Key": "k\r\nX-Evil: 1"}, b"{}")
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(1)  # nothing went out
