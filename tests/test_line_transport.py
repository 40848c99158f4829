"""The SDK's kept-alive transport over real sockets: one connection for many calls, a
connection the server dropped is never reused (a reply token is sent once), errors
keep the SDK's meaning."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from linebot.v3.messaging import Configuration

from conversations.kit.messages import text
from handlers.line_api import LineApi, LineApiError
from handlers.line_transport import KeepAliveRest
from tests.conftest import TOKEN

ERIN = "U" + "e" * 32


_SENT = '{"sentMessages":[{"id":"1","quoteToken":"q"}]}'


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.plan: list[tuple[int, str, bool]] = []  # (status, body, drop the connection afterwards)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base class's name
        pass

    def do_POST(self) -> None:  # noqa: N802  # http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": json.loads(body),
                                         "auth": self.headers["Authorization"]})
            status, answer, drop = self.server.plan.pop(0) if self.server.plan else (200, _SENT, False)
        data = answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        if drop:  # an idle keep-alive connection closed by the server, without saying so
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _api(srv: _Server, timeout: float = 2.0) -> LineApi:
    return LineApi(TOKEN, srv.url, srv.url, timeout=timeout)


def test_calls_share_one_kept_alive_connection(server):
    api = _api(server)
    for i in range(5):
        api.reply(f"token-{i}", [text(f"{i}件目です")])
    api.push(ERIN, [text("お知らせ")], retry_key=str(uuid.uuid4()))
    assert server.connections == 1
    assert [r["body"].get("replyToken") for r in server.requests[:5]] == [f"token-{i}" for i in range(5)]
    # The body is the SDK's JSON, sent as UTF-8 with the bearer token.
    assert server.requests[0]["body"]["messages"][0]["text"] == "0件目です"
    assert server.requests[0]["auth"] == f"Bearer {TOKEN}"
    assert server.requests[5]["path"] == "/v2/bot/message/push"


def test_a_body_already_encoded_goes_as_it_is_and_through_the_sdks_own_client_too(server):
    """A reply's body is JSON bytes (``LineApi.reply``); behind a proxy the SDK's urllib3 client
    (which encodes JSON itself) sends it instead, and the same JSON arrives."""
    body = json.dumps({"replyToken": "t", "messages": [{"type": "text", "text": "日本語"}]}, ensure_ascii=False)
    direct = KeepAliveRest(Configuration(host=server.url, access_token="x"))
    configuration = Configuration(host=server.url, access_token="x")
    configuration.proxy = server.url  # the test server plays the proxy: it answers the absolute URL itself
    proxied = KeepAliveRest(configuration)
    for rest in (direct, proxied):
        rest.post_request(server.url + "/v2/bot/message/reply", headers={"Content-Type": "application/json"},
                          body=body.encode("utf-8"))
    assert [r["body"] for r in server.requests] == [json.loads(body)] * 2
    assert server.requests[1]["path"].startswith("http://")  # the proxy's absolute form: the fallback was taken


def test_a_connection_the_server_dropped_is_not_reused_and_nothing_is_sent_twice(server):
    api = _api(server)
    server.plan = [(200, _SENT, True)]
    api.reply("first", [text("一通目")])
    time.sleep(0.1)  # the server has closed its end
    api.reply("second", [text("二通目")])
    assert [r["body"]["replyToken"] for r in server.requests] == ["first", "second"]
    assert server.connections == 2


def test_refusals_keep_their_status_and_body(server):
    api = _api(server)
    server.plan = [(400, '{"message":"Invalid reply token"}', False), (500, '{"message":"oops"}', False),
                   (429, '{"message":"You have reached your monthly limit."}', False)]
    with pytest.raises(LineApiError) as refused:
        api.reply("used", [text("x")])
    assert refused.value.status == 400 and "Invalid reply token" in refused.value.body
    assert not refused.value.transient
    with pytest.raises(LineApiError) as failed:
        api.push(ERIN, [text("x")], retry_key=str(uuid.uuid4()))
    assert failed.value.status == 500 and failed.value.transient
    with pytest.raises(LineApiError) as quota:
        api.push(ERIN, [text("x")], retry_key=str(uuid.uuid4()))
    assert quota.value.monthly_quota and not quota.value.transient
    api.reply("fine", [text("x")])  # the connection is still good after refusals
    assert server.connections == 1


def test_a_read_timeout_is_a_transient_failure_and_the_next_call_reconnects():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        api = LineApi(TOKEN, url, url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(LineApiError) as err:
            api.reply("t", [text("x")])
        assert err.value.status is None and err.value.transient
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()


def test_nobody_listening_is_a_transient_failure():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    api = LineApi(TOKEN, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(LineApiError) as err:
        api.reply("t", [text("x")])
    assert err.value.status is None and err.value.transient


def test_https_certificates_and_host_names_are_checked():
    rest = KeepAliveRest(Configuration(host="https://api.line.me", access_token="x"))
    assert rest._ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert rest._ssl_context.check_hostname


def test_each_thread_has_its_own_connection(server):
    api = _api(server)
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            for i in range(3):
                api.reply(f"t{n}-{i}", [text("x")])
        except BaseException as exc:  # noqa: BLE001  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(server.requests) == 12 and server.connections == 4
