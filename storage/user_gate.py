"""The way into and out of one user's event, in as few Redis round trips as possible.

Entering does three things atomically in one script: mark the webhook event
id (``SET NX EX`` — a second delivery is a duplicate), take the user's lock
(``SET NX PX`` with a random token) and read the session, so the lock is
held *before* the session is read. Leaving writes the session (sliding TTL)
and releases the lock only if we still own it, again in one script. That is
2 round trips per event instead of 5 (measured ≈1.1 ms each on a busy
2-core machine).

When the lock is busy, the caller waits with redis-py's ``Lock`` polling at
5 ms (the default 0.1 s gave p99 97 ms under load) and defers the event to
the worker queue if it still cannot have it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis

from storage.sessions import SESSION_TTL_SECONDS, KeyBuilder

_ENTER = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {0} end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  local session = redis.call('GET', KEYS[3])
  if not session then session = '' end
  return {1, session}
end
return {2}
"""

_LEAVE = """
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

NOT_READ = object()  # the session was not read while entering (lock taken by waiting)


@dataclass
class Entry:
    status: str  # duplicate / entered / busy
    token: str | None = None
    raw_session: object = NOT_READ


class UserGate:
    def __init__(self, client: redis.Redis, keys: KeyBuilder, dedupe_ttl: int, lock_timeout: float,
                 lock_sleep: float, session_ttl: int = SESSION_TTL_SECONDS):
        self.client = client
        self.keys = keys
        self.dedupe_ttl = dedupe_ttl
        self.lock_timeout = lock_timeout
        self.lock_sleep = lock_sleep
        self.session_ttl = session_ttl
        self._enter = client.register_script(_ENTER)
        self._leave = client.register_script(_LEAVE)
        self._release = client.register_script(_RELEASE)

    def enter(self, event_id: str, user_id: str) -> Entry:
        token = uuid.uuid4().hex
        result = self._enter(
            keys=[self.keys.event(event_id), self.keys.lock(user_id), self.keys.session(user_id)],
            args=[self.dedupe_ttl, token, int(self.lock_timeout * 1000)],
        )
        code = int(result[0])
        if code == 0:
            return Entry("duplicate")
        if code == 2:
            return Entry("busy")
        return Entry("entered", token, result[1] or None)

    def wait(self, user_id: str, blocking_timeout: float, client: redis.Redis | None = None) -> str | None:
        """Wait for a busy user's lock; returns our token or None when the wait ran out."""
        lock = (client or self.client).lock(self.keys.lock(user_id), timeout=self.lock_timeout,
                                            sleep=self.lock_sleep, blocking_timeout=blocking_timeout)
        if not lock.acquire():
            return None
        token = lock.local.token
        return token.decode() if isinstance(token, bytes) else str(token)

    def leave(self, user_id: str, token: str, session_json: str | None) -> None:
        """Save (or, with None, delete) the session and release the lock if still ours."""
        self._leave(keys=[self.keys.session(user_id), self.keys.lock(user_id)],
                    args=[session_json or "", self.session_ttl, token])

    def release(self, user_id: str, token: str) -> None:
        self._release(keys=[self.keys.lock(user_id)], args=[token])

    def forget_event(self, event_id: str) -> None:
        """Release a failed event's dedupe marker so LINE's redelivery runs."""
        self.client.delete(self.keys.event(event_id))
