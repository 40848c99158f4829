"""Redis behind Sentinel: the ``REDIS_URL`` form, and failovers of the real bot under load.

The failover tests start their own primary + replica + 3 sentinels
(``bench.servers.SentinelSet``, never the machine's Redis), serve the real
app, and keep several users sending events with LINE-like redelivery of
every 503. Then the primary is failed over (``SENTINEL FAILOVER``) or
SIGKILLed, and they check: 503s only around the switch, 200s again within
10 s of the sentinels agreeing on the new primary (no restart), every event
applied and answered exactly once, sessions written before the switch still
there, the Lua gate and RQ working on the new primary.

Each run prints its figures (``-s`` shows them).
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from cryptography.fernet import Fernet
from redis.commands.core import Script
from redis.sentinel import SentinelConnectionPool
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from werkzeug.serving import make_server

import bot
from bench.servers import SentinelSet, ServerUnavailable
from handlers import runtime
from handlers.config import Config, ConfigError
from simulator import events
from simulator.platform import PlatformState, message_text
from storage import db as storage_db
from storage import redis_conn, redis_sentinel, redis_urls
from storage.models import LineUser, ProcessedEvent
from storage.redis_sentinel import FollowingConnection
from storage.redis_urls import RedisUrlError, SentinelUrl, parse_sentinel_url
from tests.conftest import SECRET, make_config, reset_database

LOAD_USERS = ["U" + f"{i:x}" * 32 for i in range(1, 6)]  # five users sending all the time
QUIET_USERS = ["U" + c * 32 for c in "abc"]  # mid-registration before the switch, silent during it
REDELIVERY_DELAY = 0.2  # s; LINE waits longer, the test has no time to
SEND_PAUSE = 0.03  # s between one user's events
RECOVERY_LIMIT = 10.0  # s from the sentinels agreeing to 200s again
# s after the sentinels agree: no failure from then on (the load goes on 3 s). The requirement is
# 200s within 10 s; on a loaded 2-core machine a last burst of 503s came 1.1 s after agreement.
SETTLED = 2.0


# --- the URL form -------------------------------------------------------------------------------


def test_several_hosts_db_and_the_default_port():
    url = "redis+sentinel://10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/3"
    assert parse_sentinel_url(url) == SentinelUrl(
        hosts=(("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26381)), service="mymaster", db=3)


def test_db_defaults_to_zero_and_a_trailing_slash_is_fine():
    assert parse_sentinel_url("redis+sentinel://h:1/svc").db == 0
    assert parse_sentinel_url("redis+sentinel://h:1/svc/").db == 0
    assert parse_sentinel_url("REDIS+SENTINEL://h:1/svc/2").db == 2


def test_passwords_for_the_data_nodes_and_for_the_sentinels():
    target = parse_sentinel_url("redis+sentinel://app:p%40ss@h1:1,h2:2/svc/1?sentinel_password=s%2Fx")
    assert (target.username, target.password, target.sentinel_password) == ("app", "p@ss", "s/x")
    assert parse_sentinel_url("redis+sentinel://:pw@h1/svc").password == "pw"
    assert "pw" not in repr(parse_sentinel_url("redis+sentinel://:pw@h1/svc"))


def test_sentinel_url_builder_round_trips():
    url = redis_urls.sentinel_url([("127.0.0.1", 5000), ("127.0.0.2", 5001)], "mymaster", 4, password="a@b:c")
    target = parse_sentinel_url(url)
    assert (target.hosts, target.service, target.db, target.password) == (
        (("127.0.0.1", 5000), ("127.0.0.2", 5001)), "mymaster", 4, "a@b:c")


@pytest.mark.parametrize("url, words", [
    ("redis+sentinel://", "no sentinel host"),
    ("redis+sentinel:///mymaster/0", "no sentinel host"),
    ("redis+sentinel://h1:26379", "no service"),
    ("redis+sentinel://h1:26379/", "no service"),
    ("redis+sentinel://h1:26379,/mymaster", "empty host"),
    ("redis+sentinel://h1:99999/mymaster", "bad port"),
    ("redis+sentinel://h1:port/mymaster", "bad port"),
    ("redis+sentinel://[::1/mymaster", "IPv6"),
    ("redis+sentinel://h1/mymaster/zero", "bad database"),
    ("redis+sentinel://h1/mymaster/0/1", "bad database"),
    ("redis+sentinel://:secret@h1/mymaster?socket_timeout=1", "unknown options socket_timeout"),
])
def test_bad_forms_say_what_is_wrong_and_name_redis_url(url, words):
    with pytest.raises(RedisUrlError) as info:
        parse_sentinel_url(url)
    message = str(info.value)
    assert message.startswith("REDIS_URL ") and words in message and "redis+sentinel://" in message
    assert "secret" not in message


@pytest.mark.parametrize("url", ["redis+sentinel://h1/", "http://h1:6379/0", "sentinel://h1/mymaster"])
def test_config_refuses_a_malformed_redis_url_in_one_line(url):
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
           "SIGNING_KEY": "g", "REDIS_URL": url}
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Config.from_env(env)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/2", "unix:///tmp/r.sock?db=1",
                                 "redis+sentinel://a:1,b:2/mymaster/0"])
def test_config_accepts_every_supported_form(url):
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
           "SIGNING_KEY": "g", "REDIS_URL": f" {url} "}
    assert Config.from_env(env).redis_url == url


def test_plain_urls_build_the_same_clients_as_before():
    client = redis_conn.webhook_client("redis://127.0.0.1:1/3")
    kwargs = client.connection_pool.connection_kwargs
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["retry"].get_retries()) == (3, 0.25, 0)
    assert redis_conn.worker_client("unix:///tmp/x.sock").connection_pool.connection_kwargs["path"] == "/tmp/x.sock"


def test_the_worker_client_waits_out_rqs_blocking_pop(redis_url):
    """redis-py's default 5 s read timeout made an idle RQ worker quit ("Redis connection timeout")
    whenever its queues were empty for 5 s; the worker's pop must outlast that, and RQ's."""
    assert SimpleWorker([], connection=redis.Redis(), worker_ttl=redis_conn.WORKER_TTL).dequeue_timeout \
        < redis_conn.WORKER_SOCKET_TIMEOUT
    client = redis_conn.worker_client(redis_url)
    started = time.monotonic()
    assert client.blpop([f"empty-{os.getpid()}-{time.time_ns()}"], 6) is None
    assert time.monotonic() - started >= 5.9


def test_sentinel_clients_fail_fast_on_the_webhook_and_start_no_thread_until_used():
    threads = threading.active_count()
    client = redis_conn.webhook_client("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/5")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.connection_class is FollowingConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"], kwargs["retry"].get_retries()) == (
        5, "pw", 0.25, 0)
    assert threading.active_count() == threads  # nothing at build time: gunicorn forks after it
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()  # no sentinel answers
    assert time.monotonic() - started < 1.5
    redis_sentinel.stop_following()


# --- following the sentinels (no servers) -------------------------------------------------------


class FakeConnection:
    def __init__(self, host: str, port: int):
        self.host, self.port, self.cuts = host, port, 0

    def cut(self) -> None:
        self.cuts += 1


def test_follower_fences_at_the_promotion_and_cuts_the_old_primary_at_the_switch():
    follower = redis_sentinel._Follower("mymaster", [("s", 1), ("s", 2), ("s", 3)], None)
    follower.reported(("s", 1), ("h", 1))
    assert follower.master == ("h", 1), "the first answer is taken as it is"
    on_old, on_new = FakeConnection("h", 1), FakeConnection("h", 2)
    follower.track(on_old)  # type: ignore[arg-type]
    follower.track(on_new)  # type: ignore[arg-type]

    follower.on_message("+failover-state-select-slave", "master other h 7")
    assert not follower.fenced and on_old.cuts == 0, "another service's failover"
    follower.on_message("+failover-state-select-slave", "master mymaster h 1")
    follower.on_message("+failover-state-send-slaveof-noone", "slave h:2 h 2 @ mymaster h 1")
    assert follower.fenced and follower.fences == 1 and (on_old.cuts, on_new.cuts) == (1, 1)
    follower.reported(("s", 2), ("h", 1))
    assert follower.fenced, "a poll that still names the old primary does not lift the fence"

    follower.on_message("+switch-master", "mymaster h 1 h 2")
    assert not follower.fenced and follower.master == ("h", 2)
    assert [(s.old, s.new, s.how) for s in follower.switches] == [(("h", 1), ("h", 2), "switch-master")]
    cuts = (on_old.cuts, on_new.cuts)
    follower.on_message("+switch-master", "mymaster h 1 h 2")  # the other sentinels say it too
    assert (on_old.cuts, on_new.cuts) == (cuts[0] + 1, cuts[1]), "only connections elsewhere are cut"

    follower.reported(("s", 3), ("h", 1))  # a sentinel cut off from the others
    assert follower.master == ("h", 2)
    follower.reported(("s", 1), ("h", 2))
    follower.reported(("s", 2), ("h", 2))
    assert (follower.master, len(follower.switches)) == (("h", 2), 1)


def test_follower_moves_on_a_poll_only_when_most_sentinels_agree():
    follower = redis_sentinel._Follower("mymaster", [("s", 1), ("s", 2), ("s", 3)], None)
    follower.reported(("s", 1), ("h", 1))
    follower.reported(("s", 2), ("h", 1))
    follower.reported(("s", 3), ("h", 9))
    assert follower.master == ("h", 1)
    follower.reported(("s", 1), ("h", 9))  # a switch whose message we missed
    assert follower.master == ("h", 9) and [(s.old, s.new, s.how) for s in follower.switches] == [
        (("h", 1), ("h", 9), "poll")]


def test_follower_refuses_connections_during_the_fence_and_to_a_demoted_primary():
    follower = redis_sentinel._Follower("mymaster", [("127.0.0.1", 1)], None)
    try:
        follower.admit(("h", 1))  # nothing known yet: whatever the sentinels say
        follower.reported(("127.0.0.1", 1), ("h", 1))
        follower.fence()
        with pytest.raises(redis.ConnectionError, match="failover of 'mymaster' in progress"):
            follower.admit(("h", 1))
        follower.on_message("+switch-master", "mymaster h 1 h 2")
        follower.admit(("h", 2))
        with pytest.raises(redis.ConnectionError, match="no longer the primary"):
            follower.admit(("h", 1))  # a sentinel still naming the old primary
    finally:
        follower.stop()


def test_an_aborted_failover_lifts_the_fence_and_the_fence_has_a_cap(monkeypatch):
    follower = redis_sentinel._Follower("mymaster", [("127.0.0.1", 1)], None)
    follower.on_message("+failover-state-send-slaveof-noone", "slave h:2 h 2 @ mymaster h 1")
    follower.on_message("-failover-abort-slave-timeout", "master mymaster h 1")
    assert not follower.fenced
    monkeypatch.setattr(redis_sentinel, "FENCE_MAX", 0.05)
    follower.fence()
    assert follower.fenced
    time.sleep(0.06)
    assert not follower.fenced


# --- a live primary + replica + 3 sentinels -------------------------------------------------------


@contextmanager
def running_set(**options: Any) -> Iterator[SentinelSet]:
    """A started ``SentinelSet(**options)``, removed afterwards; skips the test without the servers."""
    try:
        servers = SentinelSet(**options)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        servers.start()
        yield servers
    finally:
        redis_sentinel.stop_following()
        servers.remove()


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    with running_set(replicas=1, count=3, down_after_ms=1000, failover_timeout_ms=5000) as servers:
        yield servers


@pytest.fixture(scope="module")
def steady_set() -> Iterator[SentinelSet]:
    """A set that no test fails over (the fork and READONLY tests share it)."""
    with running_set(replicas=1, count=3) as servers:
        yield servers


@dataclass
class SentinelBot:
    url: str
    line: PlatformState
    rt: runtime.Runtime
    log_dir: Path
    replies: Counter[str] = field(default_factory=Counter)  # reply token → reply calls

    def log_lines(self, *needles: str) -> list[str]:
        """The bot's log lines that mention any of ``needles`` (for failure messages)."""
        return [line for path in sorted(self.log_dir.glob("*.jsonl"))
                for line in path.read_text(encoding="utf-8").splitlines() if any(n in line for n in needles)]

    def post(self, event_list: list[dict[str, Any]]) -> requests.Response:
        return events.post(self.url + "/callback", SECRET, event_list, timeout=10)

    def say(self, user: str, kind: str = "text", **fields: Any) -> list[str]:
        before = len(self.line.deliveries_for(user))
        response = self.post([self.line.build_event(user, kind, **fields)])
        assert response.status_code == 200, response.text
        return [message_text(m) for d in self.line.deliveries_for(user)[before:] for m in d["messages"]]

    def drain(self, timeout: float = 40) -> None:
        """Run the worker on the (new) primary until no deferred event or push is left, retries included
        (a deferred event whose user was still busy is retried by RQ after 1 s, 5 s, …)."""
        queues = [self.rt.queue(name, for_worker=True) for name in (runtime.EVENTS_QUEUE, runtime.OUTBOX_QUEUE)]
        deadline = time.monotonic() + timeout
        while True:
            SimpleWorker(queues, connection=self.rt.worker_redis).work(burst=True, with_scheduler=True,
                                                                        logging_level="ERROR")
            pending = sum(q.count + q.scheduled_job_registry.count + q.started_job_registry.count for q in queues)
            if not pending or time.monotonic() > deadline:
                return
            time.sleep(0.5)


@pytest.fixture
def sentinel_bot(sentinel_set: SentinelSet, platform_server: tuple[PlatformState, str],
                 tmp_path: Path) -> Iterator[SentinelBot]:
    line, platform_url = platform_server
    line.reset()
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    reset_database(db_url)
    config = make_config(sentinel_set.url, db_url, platform_url, tmp_path, log_stdout=False)
    app = bot.create_app(config, close_db_after_request=True)
    rt = runtime.current()
    rt.outbox_retry_intervals = (0, 0, 0, 0, 0)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    harness = SentinelBot(f"http://127.0.0.1:{server.server_port}", line, rt, tmp_path / "log")
    use_reply_token = line.use_reply_token

    def counting(token: str) -> str | None:
        harness.replies[token] += 1
        return use_reply_token(token)

    line.use_reply_token = counting  # type: ignore[method-assign]
    try:
        yield harness
    finally:
        del line.use_reply_token
        server.shutdown()
        storage_db.database.close()
        violations = list(line.violations)
        line.reset()
    assert not violations, f"the bot sent requests LINE would refuse: {violations}"


@dataclass
class Sample:
    sent: float  # time.monotonic()
    done: float
    status: int  # 0: no answer at all


class Load:
    """Several users, each sending one event after another; a 503 is redelivered like LINE does."""

    def __init__(self, harness: SentinelBot, users: list[str]):
        self.harness = harness
        self.users = users
        self.samples: list[Sample] = []
        self.sent: list[dict[str, Any]] = []
        self.undelivered: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user, args=(u,), daemon=True) for u in users]

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        self.canary = Canary(self.harness.rt.redis, self._stop).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in [*self._threads, self.canary.thread]:
            thread.join(timeout=60)

    def _user(self, user: str) -> None:
        while not self._stop.is_set():
            event = self.harness.line.build_event(user, "text", text="状況")
            self.sent.append(event)
            self._deliver(event)
            time.sleep(SEND_PAUSE)

    def _deliver(self, event: dict[str, Any]) -> None:
        attempt, give_up = event, time.monotonic() + 30
        while time.monotonic() < give_up:
            sent = time.monotonic()
            try:
                status = self.harness.post([attempt]).status_code
            except requests.RequestException:
                status = 0
            self.samples.append(Sample(sent, time.monotonic(), status))
            if status == 200:
                return
            time.sleep(REDELIVERY_DELAY)
            attempt = events.redelivery(event)
        self.undelivered.append(event["webhookEventId"])


class Canary:
    """Counts acknowledged INCRs through the webhook's client: Redis must end with exactly that many.

    A write that reached the old primary after the replica's promotion is
    acknowledged and then thrown away when the old primary resyncs."""

    KEY = "canary:acknowledged"

    def __init__(self, client: redis.Redis, stop: threading.Event):
        self.client = client
        self.stop = stop
        self.acknowledged = 0
        self.unsure = 0  # INCRs that raised: applied or not, nobody can tell
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Canary":
        self.client.delete(self.KEY)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.incr(self.KEY)
                self.acknowledged += 1
            except redis.RedisError:
                self.unsure += 1  # not acknowledged: it may or may not have happened
            time.sleep(0.01)

    def lost(self, client: redis.Redis) -> int:
        """Acknowledged writes Redis no longer has. An unacknowledged write that did happen
        (the reply was lost with the connection) may leave Redis above the acknowledged
        count, never above it plus the unsure ones."""
        stored = int(client.get(self.KEY) or 0)
        assert stored <= self.acknowledged + self.unsure, (stored, self.acknowledged, self.unsure)
        return max(self.acknowledged - stored, 0)


@dataclass
class Figures:
    agreed: float  # s after the failover command / the kill
    first_failure: float | None
    last_failure: float | None
    failures: int
    first_200_after_agreement: float | None  # s after ``agreed``; < 0: back before the poll saw agreement
    requests: int

    def line(self, what: str) -> str:
        window = (f"{self.first_failure:.2f}–{self.last_failure:.2f} s ({self.last_failure - self.first_failure:.2f} s)"
                  if self.failures else "none")
        first = "n/a" if self.first_200_after_agreement is None else f"{self.first_200_after_agreement:+.2f} s"
        return (f"{what}: sentinels agreed at {self.agreed:.2f} s; non-200 window {window}, {self.failures} of "
                f"{self.requests} requests; first 200 after agreement {first}")


def figures(samples: list[Sample], t0: float, agreed: float) -> Figures:
    """The outage as the senders saw it; "back" is the first 200 after the last failure sent before agreement
    (it can come before the test's poll saw the sentinels agree: the bot hears +switch-master at once)."""
    bad = [s for s in samples if s.status != 200]
    last_try = max((s.sent for s in bad if s.sent <= agreed), default=t0)  # the last failure before agreement
    back = [s.done for s in samples if s.status == 200 and s.done >= last_try]
    return Figures(
        agreed=agreed - t0,
        first_failure=min(s.sent for s in bad) - t0 if bad else None,
        last_failure=max(s.done for s in bad) - t0 if bad else None,
        failures=len(bad),
        first_200_after_agreement=min(back) - agreed if back else None,
        requests=len(samples),
    )


def wait_for_new_primary(servers: SentinelSet, old: int, timeout: float = 30) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port = servers.current_primary_port()
        if port is not None and port != old:
            return port, time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"the sentinels did not agree on a new primary within {timeout:.0f}s")


def mid_registration(harness: SentinelBot) -> dict[str, bytes]:
    """The quiet users agree to the terms and stop at the institution code; their raw sessions."""
    sessions = {}
    for user in QUIET_USERS:
        harness.say(user, "follow")
        assert any("機関コード" in t for t in harness.say(user, text="同意する"))
        raw = harness.rt.worker_redis.get(harness.rt.keys.session(user))
        assert raw, "the session is in Redis"
        sessions[user] = raw
    return sessions


def gate_shas(harness: SentinelBot) -> list[str]:
    """Every Lua script the gate registered (found by type: the gate's internals are not ours)."""
    return [value.sha for value in vars(harness.rt.gate).values() if isinstance(value, Script)]


def run_failover(servers: SentinelSet, harness: SentinelBot, kill: bool) -> Figures:
    """Load → fail the primary over (or kill it) → load until well after the switch → check everything."""
    old = servers.current_primary_port()
    assert old is not None
    replica = servers.replicas[0]
    for user in LOAD_USERS:
        harness.say(user, "follow")
    sessions = mid_registration(harness)
    servers.server_on(old).client().wait(1, 2000)  # the replica has everything so far
    shas = gate_shas(harness)
    assert len(shas) >= 2 and not any(replica.client().script_exists(*shas)), "scripts are not replicated"

    load = Load(harness, LOAD_USERS).start()
    time.sleep(1.0)
    t0 = time.monotonic()
    if kill:
        servers.server_on(old).kill9()
    else:
        servers.failover()
    new, agreed = wait_for_new_primary(servers, old)
    assert new == replica.port
    time.sleep(3.0)
    load.stop()
    result = figures(load.samples, t0, agreed)
    lost = load.canary.lost(replica.client())  # read on the new primary itself, not through the bot
    print("\n" + result.line("kill -9 of the primary" if kill else "SENTINEL FAILOVER")
          + f"; acknowledged writes lost {lost} of {load.canary.acknowledged}")
    assert lost == 0, f"{lost} acknowledged writes went to the old primary and were lost"

    # 503s (or refused connections) only around the switch; 200s again soon after the agreement.
    assert not load.undelivered, f"events never accepted: {load.undelivered}"
    assert all(s.status in (200, 503) for s in load.samples if s.sent > t0), Counter(s.status for s in load.samples)
    assert all(s.status == 200 for s in load.samples if s.done < t0), "failures before the failover"
    assert result.first_200_after_agreement is not None and result.first_200_after_agreement <= RECOVERY_LIMIT
    late = [round(s.sent - agreed, 2) for s in load.samples if s.status != 200 and s.sent > agreed + SETTLED]
    assert not late, f"failures after the switch had settled (s after agreement): {late}"
    assert any(s.status == 200 for s in load.samples if s.sent > agreed), "no 200 against the new primary"

    # The gate's scripts were loaded on the new primary (NOSCRIPT → SCRIPT LOAD) and work there.
    harness.drain()
    assert sum(replica.client().script_exists(*shas)) >= 2, "enter and leave were loaded on the new primary"
    assert_exactly_once(harness, load)
    assert_sessions_kept(harness, sessions, replica.client())
    assert_rq_works(harness)
    return result


def assert_exactly_once(harness: SentinelBot, load: Load) -> None:
    """Every event ran once (one SQL row) and was answered once (one reply call, one delivery)."""
    ids = [e["webhookEventId"] for e in load.sent]
    ran = {row.webhook_event_id for row in ProcessedEvent.select().where(ProcessedEvent.webhook_event_id.in_(ids))}
    missing = [i for i in ids if i not in ran]
    assert not missing, f"events answered 200 but never run: {harness.log_lines(*missing)}"
    calls = Counter(harness.replies[e["replyToken"]] for e in load.sent)
    assert calls == Counter({1: len(ids)}), f"reply calls per event: {calls}"
    for user in LOAD_USERS:
        mine = [e for e in load.sent if e["source"]["userId"] == user]
        deliveries = harness.line.deliveries_for(user)
        assert len(deliveries) == len(mine) + 1, (user, len(deliveries), len(mine))  # +1: the follow


def assert_sessions_kept(harness: SentinelBot, sessions: dict[str, bytes], new_primary: redis.Redis) -> None:
    """Sessions written before the switch are on the new primary as they were, and the chat goes on;
    the senders' sessions there are as current as SQL."""
    for user, raw in sessions.items():
        assert new_primary.get(harness.rt.keys.session(user)) == raw, f"{user}'s session changed"
        before = harness.rt.gate.read_session(user, new_primary)
        texts = harness.say(user, text="999999")
        assert before is not None and before.state == harness.rt.gate.read_session(user, new_primary).state
        assert any("機関コード" in t for t in texts), texts
    for user in LOAD_USERS:
        session = harness.rt.gate.read_session(user, new_primary)
        rev = LineUser.get(LineUser.line_user_id == user).session_rev
        assert session is not None and session.v == rev, f"{user}'s session is behind SQL after the switch"


def noop_job(value: int) -> int:
    return value


def assert_rq_works(harness: SentinelBot) -> None:
    """Enqueue, schedule and work through the Sentinel-managed client on the new primary."""
    from datetime import timedelta

    queue = harness.rt.queue(runtime.OUTBOX_QUEUE, for_worker=True)
    now_job = queue.enqueue(noop_job, 1)
    later_job = queue.enqueue_in(timedelta(seconds=0), noop_job, 2)
    scheduler = RQScheduler([queue], connection=harness.rt.worker_redis)
    assert scheduler.connection.connection_pool.connection_class is FollowingConnection
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    SimpleWorker([queue], connection=harness.rt.worker_redis).work(burst=True, logging_level="ERROR")
    assert (now_job.latest_result().return_value, later_job.latest_result().return_value) == (1, 2)


def test_sentinel_failover_under_load(sentinel_set, sentinel_bot):
    result = run_failover(sentinel_set, sentinel_bot, kill=False)
    follower = next(f for f in redis_sentinel.followers() if f.service == sentinel_set.master_name)
    assert [s.new[1] for s in follower.switches] == [sentinel_set.replicas[0].port]
    assert redis_sentinel.switch_count() == 1
    assert follower.fences >= 1, "the promotion was seen: nothing was written to the old primary after it"
    assert result.failures > 0


def test_kill_9_of_the_primary_under_load(sentinel_set, sentinel_bot):
    run_failover(sentinel_set, sentinel_bot, kill=True)


def test_readonly_from_a_demoted_primary_re_resolves(steady_set, monkeypatch):
    """A script sent to a replica (a primary demoted behind the sentinels' back, which the follower
    cannot know of) fails once with READONLY, then runs on the primary: redis-py's own defence."""
    monkeypatch.setattr(redis_sentinel._Follower, "admit", lambda self, address: None)
    monkeypatch.setattr(redis_sentinel._Follower, "track", lambda self, conn: None)
    client = redis_conn.webhook_client(steady_set.url)
    manager = client.connection_pool.sentinel_manager
    real = manager.discover_master
    answers = iter([("127.0.0.1", steady_set.replicas[0].port)])
    monkeypatch.setattr(manager, "discover_master", lambda service: next(answers, None) or real(service))
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    with pytest.raises(redis.ConnectionError, match="now a slave"):
        script(keys=["readonly-test"])
    assert script(keys=["readonly-test"]) == 1
    assert client.connection_pool.master_address[1] == steady_set.current_primary_port()


def test_a_dropped_connection_reconnects_to_the_primary_not_to_the_address_it_remembers(steady_set):
    """redis-py reconnects a dropped connection to its old host when a client retries a command."""
    client = redis_conn.worker_client(steady_set.url)
    conn = client.connection_pool.get_connection()
    try:
        conn.disconnect()
        conn.host, conn.port = "127.0.0.1", steady_set.replicas[0].port  # where the primary was before
        conn.send_command("ROLE")
        assert conn.read_response()[0] == b"master"
        assert conn.port == steady_set.current_primary_port()
    finally:
        client.connection_pool.release(conn)


def test_a_forked_child_follows_on_its_own(steady_set):
    """gunicorn forks after building the app: the child starts its own follower, the parent's threads stay."""
    redis_sentinel.stop_following()
    client = redis_conn.webhook_client(steady_set.url)
    assert client.ping()
    parent = redis_sentinel.followers()
    assert len(parent) == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it follows, then leave without cleanup
        try:
            ok = client.set("forked", "1") and len(redis_sentinel.followers()) == 1 \
                and redis_sentinel.followers()[0] is not parent[0]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert redis_sentinel.followers() == parent
