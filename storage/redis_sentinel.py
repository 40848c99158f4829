"""A Sentinel-managed primary: connections that follow the sentinels through a failover.

**Failover.** A Sentinel client resolves the primary through the sentinels
on every new connection (redis-py's ``SentinelManagedConnection``; a
``READONLY`` reply also drops the connection and re-resolves). That alone is
not enough: after ``SENTINEL FAILOVER`` the old primary stays a *writable*
primary until the sentinels convert it (8–20 s), and whatever is written
there is thrown away when it resyncs from the new one (a dedupe marker, a
session, an RQ job). Measured with a local primary + replica + 3 sentinels
and ~80 writes/s: a plain redis-py Sentinel client lost 1043 acknowledged
writes in 11 s. So each process follows the sentinels over pub/sub
(``_Follower``: one daemon thread per sentinel — only the elected leader
announces the promotion, so every sentinel is heard — started lazily by the
first connection a process makes: never at import, and afresh in a forked
child, which inherits no threads):

* ``+failover-state-select-slave`` (the leader is about to promote a
  replica, ~0.1 s before it sends ``REPLICAOF NO ONE``): from here on nothing
  may write to the old primary, so every connection is cut and new ones are
  refused (a fast ``ConnectionError``, a 503 for the webhook) until
* ``+switch-master`` (or an abort, or ``FENCE_MAX`` s), ~1.1 s later:
  connections to anything but the new primary are cut, and a connection to
  another address is refused even if a sentinel a few ms behind still names
  it. Without this fence the same run lost 91 writes; with it, none.
* Each thread also asks its sentinel every ``FOLLOW_CHECK_EVERY`` s (a missed
  message, a dead subscription); a poll moves the primary only when most
  sentinels name the new one.

Lua scripts (``register_script``) survive the switch: redis-py's
``Script.__call__`` answers ``NOSCRIPT`` with ``SCRIPT LOAD`` and retries.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from storage.redis_urls import SentinelUrl

log = structlog.get_logger("redis")

FENCE_MAX = 5.0  # s: longest we refuse connections between a promotion and +switch-master
FOLLOW_CHECK_EVERY = 5.0  # s: each follower thread also asks its sentinel for the primary
REPORT_MAX_AGE = 3 * FOLLOW_CHECK_EVERY  # s: a sentinel's last answer counts this long
FOLLOW_RECONNECT_DELAY = 0.5  # s: between attempts to reach an unreachable sentinel
SENTINEL_QUERY_TIMEOUT = 0.5  # s: the follower's own sentinel commands


def sentinel_client(target: SentinelUrl, options: dict[str, Any]) -> redis.Redis:
    """The primary of ``target.service``, through connections the process's follower can cut."""
    timeout = min(options.get("socket_connect_timeout") or SENTINEL_QUERY_TIMEOUT, SENTINEL_QUERY_TIMEOUT)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves Sentinel.__init__ unannotated
        list(target.hosts),
        sentinel_kwargs={
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),  # discover_master already tries every sentinel
            "password": target.sentinel_password,
        },
    )
    client = sentinels.master_for(  # type: ignore[no-untyped-call]  # redis-py leaves master_for unannotated
        target.service, connection_class=FollowingConnection, db=target.db,
        username=target.username, password=target.password, **options)
    return cast(redis.Redis, client)


# --- following the sentinels -----------------------------------------------------------------


class FollowingConnection(SentinelManagedConnection):
    """A connection to the current primary, which the process's follower cuts on a failover.

    It is also what RQ's scheduler rebuilds from the pool's ``connection_class``
    and kwargs (the kwargs carry the sentinel pool's proxy), so the scheduler's
    connections are followed too."""

    _resolved = False  # True while connecting to an address the sentinels just named

    def connect_to(self, address: tuple[str, int]) -> None:
        follower = follower_for(self.connection_pool)
        follower.admit(address)
        self._resolved = True
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call]  # redis-py leaves connect_to unannotated
        finally:
            self._resolved = False
        follower.track(self)

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        """redis-py reconnects a dropped connection here (``send_packed_command``, e.g. when a
        client retries a command) to the address it remembers — after a failover, the old
        primary. Ask the sentinels and the follower instead; the caller's retry policy applies."""
        if self._sock or self._resolved:
            super().connect_check_health(check_health, retry_socket_connect)
            return
        self._connect_retry()  # type: ignore[no-untyped-call]  # redis-py leaves _connect_retry unannotated

    def cut(self) -> None:
        """Shut the socket down from another thread: its owner's next read or send fails
        (``ConnectionError``) and it reconnects — to whatever the sentinels name then.
        Only ``shutdown``: closing under the owner's feet is not thread-safe."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass(frozen=True)
class Switch:
    """One change of primary as this process saw it."""

    at: float  # time.time()
    old: tuple[str, int] | None
    new: tuple[str, int]
    how: str  # "switch-master" or "poll"


class _Follower:
    """Subscribes to every sentinel of one service and cuts connections when the primary moves."""

    # The elected leader selects a replica (~0.1 s before it sends REPLICAOF NO ONE), promotes it,
    # then announces the switch; it announces an abort if it gives up.
    FENCE_CHANNELS = ("+failover-state-select-slave", "+failover-state-send-slaveof-noone")
    ABORT_CHANNELS = ("-failover-abort-no-good-slave", "-failover-abort-slave-timeout")
    CHANNELS = ("+switch-master", *FENCE_CHANNELS, *ABORT_CHANNELS)

    def __init__(self, service: str, sentinels: list[tuple[str, int]], password: str | None):
        self.service = service
        self.sentinels = sentinels
        self.password = password
        self.master: tuple[str, int] | None = None  # None until the first answer of a sentinel
        self.fenced_until = 0.0  # time.monotonic(); no new connection before it
        self.switches: list[Switch] = []
        self.fences = 0
        self._reports: dict[tuple[str, int], tuple[tuple[str, int], float]] = {}  # sentinel → (primary, when)
        self._recheck = 0  # bumped to make every thread ask its sentinel at once
        self._conns: weakref.WeakSet[FollowingConnection] = weakref.WeakSet()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- used by connections ---------------------------------------------------------------

    def admit(self, address: tuple[str, int]) -> None:
        """Start following (once per process); refuse to connect while a promotion is under way,
        or to anything but the primary we know of (a sentinel a few ms behind still names the old one)."""
        self._start()
        where = f"{address[0]}:{address[1]}"
        if self.fenced:
            raise redis.ConnectionError(f"failover of {self.service!r} in progress: not connecting to {where}")
        master = self.master
        if master is not None and (str(address[0]), int(address[1])) != master:
            self._recheck += 1  # in case it is we who are behind
            raise redis.ConnectionError(f"{where} is no longer the primary of {self.service!r} "
                                        f"(now {master[0]}:{master[1]})")

    def track(self, conn: FollowingConnection) -> None:
        with self._mutex:
            self._conns.add(conn)
        if self.fenced:
            conn.cut()  # the fence went up while we were connecting

    @property
    def fenced(self) -> bool:
        return time.monotonic() < self.fenced_until

    # -- events -------------------------------------------------------------------------------

    def fence(self) -> None:
        """A replica is being promoted: cut everything, refuse new connections until the switch."""
        with self._mutex:
            self.fenced_until = time.monotonic() + FENCE_MAX
            self.fences += 1
        log.warning("redis.failover_fence", service=self.service, max_s=FENCE_MAX)
        self._cut(keep=None)

    def unfence(self) -> None:
        with self._mutex:
            self.fenced_until = 0.0

    def switched(self, new: tuple[str, int], how: str) -> None:
        """The sentinels name ``new``: cut connections elsewhere so nothing more is written there."""
        with self._mutex:
            old, self.master = self.master, new
            if how == "switch-master":
                self._reports.clear()  # what the sentinels said before the switch is history
            if old != new or how == "switch-master":
                self.fenced_until = 0.0  # (a poll that names the old primary during the fence must not lift it)
            if old is not None and old != new:
                self.switches.append(Switch(time.time(), old, new, how))
        if old is not None and old != new:
            log.warning("redis.switch_master", service=self.service, old=f"{old[0]}:{old[1]}",
                        new=f"{new[0]}:{new[1]}", how=how)
        self._cut(keep=new)  # every time: also a straggler that reached the old primary meanwhile

    def reported(self, sentinel: tuple[str, int], primary: tuple[str, int] | None) -> None:
        """One sentinel's answer to a poll. The primary changes only when most sentinels name another
        one: a sentinel cut off from the others goes on naming the old primary."""
        now = time.monotonic()
        with self._mutex:
            if primary is None:
                self._reports.pop(sentinel, None)
            else:
                self._reports[sentinel] = (primary, now)
            votes = Counter(p for p, at in self._reports.values() if now - at < REPORT_MAX_AGE)
            current = self.master
        if not votes:
            return
        named, count = votes.most_common(1)[0]
        if current is None or (named != current and count > len(self.sentinels) // 2):
            self.switched(named, "poll")
        elif named == current:
            self._cut(keep=current)  # a straggler that reached another node meanwhile

    def _cut(self, keep: tuple[str, int] | None) -> None:
        with self._mutex:
            conns = list(self._conns)
        for conn in conns:
            if keep is None or (str(conn.host), int(conn.port)) != keep:
                conn.cut()

    def on_message(self, channel: str, data: str) -> None:
        words = data.split()
        if channel == "+switch-master":
            if len(words) == 5 and words[0] == self.service:
                self.switched((words[3], int(words[4])), "switch-master")
                self._recheck += 1  # and hear the other sentinels' view of it soon
        elif _names_service(words, self.service):
            if channel in self.FENCE_CHANNELS:
                if not self.fenced:
                    self.fence()
            elif channel in self.ABORT_CHANNELS:
                self.unfence()  # the failover was given up: the old primary stays

    # -- threads ------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        with self._mutex:
            if self._threads:
                return
            for host, port in self.sentinels:
                thread = threading.Thread(target=self._follow, args=(host, port), daemon=True,
                                          name=f"sentinel-follow-{self.service}-{port}")
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def _follow(self, host: str, port: int) -> None:
        while not self._stop.is_set():
            try:
                self._listen(host, port)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass  # that sentinel is down or restarting: try it again shortly
            except Exception as exc:  # keep following whatever a sentinel answers
                log.warning("redis.follow_error", sentinel=f"{host}:{port}", error=f"{type(exc).__name__}: {exc}"[:200])
            self._stop.wait(FOLLOW_RECONNECT_DELAY)

    def _listen(self, host: str, port: int) -> None:
        client = redis.Redis(host=host, port=port, password=self.password, socket_timeout=SENTINEL_QUERY_TIMEOUT,
                             socket_connect_timeout=SENTINEL_QUERY_TIMEOUT, retry=Retry(NoBackoff(), 0),
                             health_check_interval=0, decode_responses=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # redis-py leaves pubsub unannotated
        try:
            pubsub.subscribe(*self.CHANNELS)
            next_check, seen = 0.0, self._recheck  # ask at once: a switch may have happened meanwhile
            while not self._stop.is_set():
                if time.monotonic() >= next_check or self._recheck != seen:
                    seen = self._recheck
                    self._check(client, (host, port))
                    next_check = time.monotonic() + FOLLOW_CHECK_EVERY
                message = pubsub.get_message(timeout=0.5)
                if message and message.get("type") == "message":
                    self.on_message(str(message["channel"]), str(message["data"]))
        finally:
            pubsub.close()
            client.close()

    def _check(self, client: redis.Redis, sentinel: tuple[str, int]) -> None:
        """Ask this sentinel for the primary (a missed message, a silently dead subscription)."""
        # a dict here (redis-py parses SENTINEL MASTER); its stubs say ``dict | bool``
        state = cast(dict[str, Any], client.sentinel_master(self.service))
        usable = state.get("is_master") and not state.get("is_sdown") and not state.get("is_odown")
        self.reported(sentinel, (str(state["ip"]), int(state["port"])) if usable else None)


def _names_service(words: list[str], service: str) -> bool:
    """Instance details: ``master <name> <ip> <port>`` or ``slave <id> <ip> <port> @ <name> <ip> <port>``."""
    if "@" in words:
        at = words.index("@")
        return len(words) > at + 1 and words[at + 1] == service
    return len(words) >= 2 and words[0] == "master" and words[1] == service


_followers: dict[tuple[str, tuple[tuple[str, int], ...]], _Follower] = {}
_followers_lock = threading.Lock()


def _forget_followers_in_child() -> None:
    """A forked child has none of the parent's threads: it follows afresh on its first connection."""
    global _followers_lock
    _followers_lock = threading.Lock()
    _followers.clear()


os.register_at_fork(after_in_child=_forget_followers_in_child)


def follower_for(proxy: Any) -> _Follower:
    """This process's follower for the service of a sentinel pool (its ``connection_pool`` proxy)."""
    manager: Sentinel = proxy.sentinel_manager
    addresses = tuple(sorted((str(s.connection_pool.connection_kwargs["host"]),
                              int(s.connection_pool.connection_kwargs["port"])) for s in manager.sentinels))
    key = (proxy.service_name, addresses)
    with _followers_lock:
        follower = _followers.get(key)
        if follower is None:
            follower = _followers[key] = _Follower(proxy.service_name, list(addresses),
                                                   manager.sentinel_kwargs.get("password"))
        return follower


def followers() -> list[_Follower]:
    """The followers of this process (what the chaos run and the tests inspect)."""
    with _followers_lock:
        return list(_followers.values())


def switch_count() -> int:
    """Changes of primary this process has seen: a cheap signal for whatever caches a fact about
    the server (e.g. the user gate's offset from Redis ``TIME``: the new primary's clock may differ)."""
    return sum(len(follower.switches) for follower in followers())


def stop_following() -> None:
    """Stop every follower thread of this process (tests: their sentinels are about to go)."""
    with _followers_lock:
        stopping = list(_followers.values())
        _followers.clear()
    for follower in stopping:
        follower.stop()
