"""The way into and out of one user's event: dedupe, then the user's lock, in LINE's order.

Entering does, atomically in one script: refuse if the request has already
given up (its deadline, compared with Redis ``TIME``), mark the webhook
event id (a delivery of an event already done is a duplicate; one of an
event still running queues behind it, since that run may yet die), and either take
the user's lock and read the session (nobody in flight, nobody waiting: the
one-round-trip fast path) or join the user's queue of waiters. Leaving
writes the session (sliding TTL) and releases the lock only if we still own
it, in one script. That is 2 round trips per event (measured ≈1.1 ms each
on a busy 2-core machine).

Why each rule exists:

* **Order.** The lock alone serialises but does not order: 50 users sending
  8 answers 10 ms apart as separate requests to 4 workers had 3–6 users per
  run with an answer taken for the wrong question. Waiters sit in a sorted
  set scored by LINE's ``timestamp`` (then the event's index in its
  request) and only the head may take the lock; the head also waits a short
  *settle* time after it queued, so a straggler a few ms late still goes
  first. Nothing waits when the user has no event in flight.
* **Only live requests take locks.** After Redis hung for 4 s, the script
  of a request that had long answered 503 ran on resume and took the lock
  for its whole TTL (the user's next message waited ~28 s). Every script
  carries the caller's deadline in Redis time (the process measures its
  clock's offset from Redis ``TIME``) and does nothing once it has passed.
* **A lock lives as long as its work.** The lease is short (3 s) and a
  keeper thread renews the locks its process holds every second, so a
  SIGKILLed worker's lock frees within the lease (it was ~19 s), while a
  slow step (a 5 s LINE call) keeps its lock.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from storage.redis_sentinel import switch_count
from storage.sessions import SESSION_TTL_SECONDS, KeyBuilder, Session, decode

# Redis time in ms, inside a script (TIME is allowed: scripts replicate by effects).
_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS: event, lock, session, queue. ARGV: in-progress ttl ms, token, lease ms, alive-until ms, score, wait-until ms.
# The event's marker is '1' once the event is done (a delivery of it again is a
# duplicate) and our token while it runs: a second delivery of a running event
# queues behind it instead of being dropped, because the first may still die
# (a SIGKILLed worker) — the SQL guard then tells whether it had committed.
_ENTER = _NOW + """
if now > tonumber(ARGV[4]) then return {3} end
local mark = redis.call('GET', KEYS[1])
if mark == '1' then return {0} end
if not mark then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  local session = redis.call('GET', KEYS[3])
  if not session then session = '' end
  return {1, session}
end
local member = ARGV[2] .. ':' .. now .. ':' .. ARGV[6]
redis.call('ZADD', KEYS[4], ARGV[5], member)
if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[6]) - now + 1000 then
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6]) - now + 1000)
end
return {2, member}
"""

# KEYS: lock, session, queue. ARGV: token, lease ms, alive-until ms, member, settle ms.
_TAKE_TURN = _NOW + """
if now > tonumber(ARGV[3]) then redis.call('ZREM', KEYS[3], ARGV[4]); return {3} end
if redis.call('ZSCORE', KEYS[3], ARGV[4]) == false then return {4} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {2} end
while true do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if head == ARGV[4] then break end
  local until_ms = tonumber(string.match(head, ':(%d+)$'))
  if until_ms and until_ms >= now then return {2} end
  redis.call('ZREM', KEYS[3], head)  -- a waiter that gave up or died
end
local queued_at = tonumber(string.match(ARGV[4], '^%w+:(%d+):'))
if now - queued_at < tonumber(ARGV[5]) then return {2} end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local session = redis.call('GET', KEYS[2])
if not session then session = '' end
return {1, session}
"""

# KEYS: queue. ARGV: old member ('' for none), token, score, wait-until ms, queued-at ms ('' = now).
# A waiter that hands over (to the worker queue) keeps its place and its queued time.
_REQUEUE = _NOW + """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
local queued_at = ARGV[5]
if queued_at == '' then queued_at = now end
local member = ARGV[2] .. ':' .. queued_at .. ':' .. ARGV[4]
redis.call('ZADD', KEYS[1], ARGV[3], member)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) - now + 1000 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) - now + 1000)
end
return member
"""

# KEYS: session, lock, event. ARGV: session json ('' deletes), ttl s, token, dedupe ttl s.
# The event is done: its dedupe marker now lives the full dedupe TTL. Only the
# lock's owner writes the session: a late LEAVE (Redis stalled, the lease ran
# out, a later event ran) must not put an older session back.
_LEAVE = """
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('DEL', KEYS[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: locks. ARGV: lease ms, then one token per key.
_RENEW = """
local kept = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ARGV[1]); kept = kept + 1 end
end
return kept
"""

NOT_READ = object()  # the session was not read while entering

IN_PROGRESS_TTL_MS = 120_000  # a running event's marker; a crashed run's marker just expires


LOCK_LEASE = 3.0  # seconds; a dead holder's lock frees within this
RENEW_EVERY = 1.0  # seconds between lease renewals of the locks a process holds
SETTLE_MS = 25  # a queued event waits this long for an earlier straggler
ALIVE_MARGIN_MS = 500  # a script that runs later than this after it was sent belongs to a request that gave up
OFFSET_MAX_AGE = 300.0  # seconds between measurements of our clock's offset from Redis


@dataclass
class Entry:
    status: str  # duplicate / entered / queued
    token: str | None = None
    raw_session: object = NOT_READ
    member: str | None = None  # our place in the user's queue, while queued


class GaveUp(redis.RedisError):
    """Redis ran our script after our deadline: the request has already answered (or will) 503."""


class _Pin:
    """One thread's connection for the gate's two scripts (``UserGate._run``), taken from the
    pool once and given back when the thread ends (a server that starts a thread per request
    would otherwise open a connection per request and keep them all)."""

    __slots__ = ("conn", "pool", "pid")

    def __init__(self, pool: Any):
        self.pool, self.pid = pool, os.getpid()
        self.conn = pool.get_connection()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            try:
                self.pool.release(self.conn)
            except Exception:  # noqa: BLE001  # at a thread's end nothing may raise; the pool reconnects
                pass


class _Pins(threading.local):
    pin: _Pin | None = None


class UserGate:
    def __init__(self, client: redis.Redis, keys: KeyBuilder, dedupe_ttl: int, lock_timeout: float = LOCK_LEASE,
                 lock_sleep: float = 0.005, session_ttl: int = SESSION_TTL_SECONDS, settle_ms: int = SETTLE_MS):
        self.client = client
        self.keys = keys
        self.dedupe_ttl = dedupe_ttl
        self.lease_ms = int(lock_timeout * 1000)
        self.lock_sleep = lock_sleep
        self.session_ttl = session_ttl
        self.settle_ms = settle_ms
        self._pins = _Pins()
        self._enter = client.register_script(_ENTER)
        self._take_turn = client.register_script(_TAKE_TURN)
        self._requeue = client.register_script(_REQUEUE)
        self._leave = client.register_script(_LEAVE)
        self._release = client.register_script(_RELEASE)
        self.keeper = LeaseKeeper(client.register_script(_RENEW), self.lease_ms)
        self._offset_ms = 0.0
        self._offset_at = -OFFSET_MAX_AGE
        self._offset_switches = 0

    # -- time: deadlines are in Redis's clock -----------------------------------------

    def _redis_now_ms(self, client: redis.Redis) -> float:
        """Our estimate of Redis's clock now: local time plus an offset measured with TIME
        (again after a failover to another primary, whose clock may differ, or a refused script)."""
        mono = time.monotonic()
        switches = switch_count()
        if mono - self._offset_at > OFFSET_MAX_AGE or switches != self._offset_switches:
            self._offset_switches = switches
            before = time.time()
            seconds, micros = client.time()
            after = time.time()
            self._offset_ms = (seconds * 1000 + micros / 1000) - (before + after) * 500
            self._offset_at = mono
        return time.time() * 1000 + self._offset_ms

    def _alive_until(self, client: redis.Redis) -> int:
        return int(self._redis_now_ms(client) + ALIVE_MARGIN_MS)

    # -- the way in ------------------------------------------------------------------------

    def enter(self, event_id: str, user_id: str, score: float, wait: float) -> Entry:
        """Dedupe the event; take the lock at once if the user is idle, else queue in LINE's order.

        ``score`` orders the user's events (LINE's timestamp in ms × 1000 + index in the
        request); ``wait`` is how long the caller may wait for its turn."""
        token = os.urandom(16).hex()  # as random as a uuid4's hex, without building the UUID
        alive_until = self._alive_until(self.client)
        result = self._run(
            self._enter,
            [self.keys.event(event_id), self.keys.lock(user_id), self.keys.session(user_id), self.keys.queue(user_id)],
            [IN_PROGRESS_TTL_MS, token, self.lease_ms, alive_until, repr(float(score)), alive_until + int(wait * 1000)],
        )
        code = int(result[0])
        if code == 0:
            return Entry("duplicate")
        if code == 3:
            self._offset_at = -OFFSET_MAX_AGE  # perhaps our clock, not the request, is late: measure again
            raise GaveUp("the enter script ran after the request's deadline")
        if code == 2:
            return Entry("queued", token, member=_text(result[1]))
        self.keeper.hold(self.client, self.keys.lock(user_id), token)
        return Entry("entered", token, result[1] or None)

    def wait_turn(self, user_id: str, entry: Entry, wait: float, client: redis.Redis | None = None,
                  score: float | None = None) -> bool:
        """Poll until we are the head of the user's queue and the lock is free; False if ``wait`` ran out.

        A waiter whose place was dropped (it was handed to the worker queue and
        started late) rejoins with its ``score``."""
        client = client or self.client
        assert entry.token is not None
        deadline = time.monotonic() + wait
        if entry.member is None:
            entry.member = self.requeue(user_id, None, entry.token, score or 0.0, wait, client=client)
        while True:
            result = self._take_turn(
                keys=[self.keys.lock(user_id), self.keys.session(user_id), self.keys.queue(user_id)],
                args=[entry.token, self.lease_ms, self._alive_until(client), entry.member, self.settle_ms],
                client=client,
            )
            code = int(result[0])
            if code == 1:
                self.keeper.hold(client, self.keys.lock(user_id), entry.token)
                entry.status, entry.raw_session, entry.member = "entered", result[1] or None, None
                return True
            if code == 3:
                self._offset_at = -OFFSET_MAX_AGE
                raise GaveUp("the take-turn script ran after the request's deadline")
            if code == 4:  # our place expired (a late worker job): join again in order
                remaining = max(deadline - time.monotonic(), 0.0)
                entry.member = self.requeue(user_id, None, entry.token, score or 0.0, remaining, client=client)
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.lock_sleep)

    def requeue(self, user_id: str, member: str | None, token: str, score: float, hold: float,
                client: redis.Redis | None = None) -> str:
        """(Re)place a waiter in the user's queue, held for ``hold`` seconds (keeping its queued time)."""
        client = client or self.client
        queued_at = member.split(":")[1] if member else ""
        until = int(self._redis_now_ms(client) + hold * 1000)
        return _text(self._requeue(keys=[self.keys.queue(user_id)],
                                   args=[member or "", token, repr(float(score)), until, queued_at], client=client))

    def _run(self, script: Script, keys: list[str], args: list[str | int | float]) -> Any:
        """``script`` on this thread's own connection from the client's pool, kept between events.

        Every event runs two scripts, and taking a connection from redis-py's pool and giving it
        back cost as much CPU as the script itself (a socket check and metrics, both ways): 84 →
        42 µs a call, measured. The connection is the pool's kind (the same timeouts, no retries,
        Sentinel's failover fencing) and is checked as the pool checks it before use; one that
        failed is disconnected and connects again on the next call. A forked child never uses its
        parent's."""
        pin = self._pins.pin
        if pin is None or pin.pid != os.getpid():
            pin = self._pins.pin = _Pin(self.client.connection_pool)
        conn = pin.conn
        try:
            if conn.can_read():  # as the pool checks: a connection Redis closed (a restart) is not sent on
                raise redis.ConnectionError("the connection was closed while idle")
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()  # the next command connects again
        try:
            try:
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
            except NoScriptError:  # a Redis restarted or failed over: load it, as Script.__call__ does
                conn.send_command("SCRIPT", "LOAD", script.script)
                script.sha = _text(conn.read_response())
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
        except redis.ResponseError:
            raise  # a whole reply was read: the connection is in step
        except BaseException:
            conn.disconnect()  # what it would read next is unknown
            raise

    # -- the way out -------------------------------------------------------------------------

    def leave(self, user_id: str, token: str, session_json: str | None, event_id: str,
              client: redis.Redis | None = None) -> bool:
        """Mark the event done; save (or, with None, delete) the session and release the lock —
        only if the lock is still ours (False: it was not, and the session was left alone)."""
        key = self.keys.lock(user_id)
        self.keeper.drop(key, token)
        keys = [self.keys.session(user_id), key, self.keys.event(event_id)]
        args: list[str | int | float] = [session_json or "", self.session_ttl, token, self.dedupe_ttl]
        if client is None or client is self.client:
            return bool(self._run(self._leave, keys, args))
        return bool(self._leave(keys=keys, args=args, client=client))

    def release(self, user_id: str, token: str, client: redis.Redis | None = None) -> None:
        key = self.keys.lock(user_id)
        self.keeper.drop(key, token)
        self._release(keys=[key], args=[token], client=client or self.client)

    def leave_queue(self, user_id: str, member: str) -> None:
        self.client.zrem(self.keys.queue(user_id), member)

    # -- the session outside an event ---------------------------------------------------------

    def read_session(self, user_id: str, client: redis.Redis | None = None) -> Session | None:
        """The user's stored session, read without the lock (the webhook's fallback when entering
        did not read it; ops and tests). Sessions are written only by :meth:`leave`, under the lock."""
        raw = (client or self.client).get(self.keys.session(user_id))
        return decode(user_id, raw)

    def delete_session(self, user_id: str) -> None:
        """Forget where the user is (the next event recomputes it from SQL)."""
        self.client.delete(self.keys.session(user_id))

    def forget_event(self, event_id: str) -> None:
        """Release a failed event's dedupe marker so LINE's redelivery runs."""
        self.client.delete(self.keys.event(event_id))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LeaseKeeper:
    """Renews, every second, the lease of each lock this process holds.

    The lease is short so that a dead holder (a SIGKILLed worker) frees the
    user within seconds; the keeper is what lets a slow but live step keep
    its lock. One daemon thread per process, started on first use (never at
    import, never inherited across a fork: it checks the pid).
    """

    def __init__(self, renew: redis.commands.core.Script, lease_ms: int, every: float = RENEW_EVERY):
        self._renew = renew
        self.lease_ms = lease_ms
        self.every = every
        self._held: dict[tuple[int, str], tuple[redis.Redis, str]] = {}
        self._mutex = threading.Lock()
        self._pid = 0

    def hold(self, client: redis.Redis, key: str, token: str) -> None:
        with self._mutex:
            self._held[(id(client), key)] = (client, token)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="lock-lease-keeper", daemon=True).start()

    def drop(self, key: str, token: str) -> None:
        with self._mutex:
            for k in [k for k, (_, t) in self._held.items() if k[1] == key and t == token]:
                del self._held[k]

    def held(self) -> int:
        with self._mutex:
            return len(self._held)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.every)
            self.renew_now()

    def renew_now(self) -> None:
        with self._mutex:
            by_client: dict[int, tuple[redis.Redis, list[str], list[str]]] = {}
            for (cid, key), (client, token) in self._held.items():
                entry = by_client.setdefault(cid, (client, [], []))
                entry[1].append(key)
                entry[2].append(token)
        for client, keys, tokens in by_client.values():
            try:
                self._renew(keys=keys, args=[self.lease_ms, *tokens], client=client)
            except redis.RedisError:
                pass  # Redis unreachable: the lease runs out, which is what a dead holder gets too
