"""Where each user is in a conversation: one JSON document per user in Redis.

Shape follows aiogram's ``fsm/storage``: a key builder, an abstract store,
and one backend. One key per user (``sess:{userId}``) holds flow, state and
data together — two keys for state and data drift apart. The TTL (30 days)
is refreshed on every write; the *logical* idle timeout (30 min) is checked
by the engine on read to greet the user back.

The session is only a position. The answers live in SQL (the draft), so a
lost or stale session is recomputed from the database, never trusted blindly.
"""
from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import redis

SCHEMA_VERSION = 1
SESSION_TTL_SECONDS = 30 * 24 * 3600


class Session:
    """A plain object (no ``__slots__``): transitions adds attributes to it."""

    def __init__(
        self,
        user_id: str,
        flow: str | None = None,
        state: str | None = None,
        v: int = 0,
        schema: int = SCHEMA_VERSION,
        data: dict[str, Any] | None = None,
        retries: dict[str, int] | None = None,
        stack: list[str] | None = None,
        updated_at: float | None = None,
    ) -> None:
        self.user_id = user_id
        self.flow = flow
        self.state = state
        self.v = v
        self.schema = schema
        self.data = data if data is not None else {}
        self.retries = retries if retries is not None else {}
        self.stack = stack if stack is not None else []
        self.updated_at = updated_at if updated_at is not None else time.time()

    def to_json(self) -> str:
        return json.dumps(
            {
                "flow": self.flow,
                "state": self.state,
                "v": self.v,
                "schema": self.schema,
                "data": self.data,
                "retries": self.retries,
                "stack": self.stack,
                "updated_at": self.updated_at,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, user_id: str, raw: str | bytes) -> "Session":
        doc = json.loads(raw)
        return cls(
            user_id,
            flow=doc.get("flow"),
            state=doc.get("state"),
            v=int(doc.get("v", 0)),
            schema=int(doc.get("schema", 0)),
            data=dict(doc.get("data") or {}),
            retries=dict(doc.get("retries") or {}),
            stack=list(doc.get("stack") or []),
            updated_at=float(doc.get("updated_at") or 0),
        )

    def reset(self) -> None:
        """Leave any flow; the user is at rest."""
        self.flow = None
        self.state = None
        self.data = {}
        self.retries = {}
        self.stack = []


def decode(user_id: str, raw: str | bytes | None) -> Session | None:
    """A stored document as a Session, or None when it is missing or unusable."""
    if not raw:
        return None
    try:
        session = Session.from_json(user_id, raw)
    except (ValueError, TypeError, AttributeError):
        # A corrupt document is treated as lost: the engine recomputes
        # the position from the SQL draft.
        return None
    if session.schema != SCHEMA_VERSION:
        # Written by another version of the code: recomputing the position
        # from SQL is safer than guessing what it meant.
        return None
    return session


@dataclass(frozen=True)
class KeyBuilder:
    """All Redis keys the bot uses, in one place."""

    prefix: str = ""

    def session(self, user_id: str) -> str:
        return f"{self.prefix}sess:{user_id}"

    def lock(self, user_id: str) -> str:
        return f"{self.prefix}lock:user:{user_id}"

    def event(self, webhook_event_id: str) -> str:
        return f"{self.prefix}evt:{webhook_event_id}"

    def queue(self, user_id: str) -> str:
        """The user's events waiting for the lock, scored by LINE's timestamp."""
        return f"{self.prefix}wait:user:{user_id}"


class SessionStore(ABC):
    """What the conversation layer needs from a session backend."""

    @abstractmethod
    def load(self, user_id: str) -> Session | None: ...

    @abstractmethod
    def save(self, session: Session) -> None: ...

    @abstractmethod
    def delete(self, user_id: str) -> None: ...


class RedisSessionStore(SessionStore):
    """Sessions as one JSON string per user with a sliding TTL."""

    def __init__(self, client: redis.Redis, keys: KeyBuilder | None = None, ttl: int = SESSION_TTL_SECONDS):
        self.client = client
        self.keys = keys or KeyBuilder()
        self.ttl = ttl

    def load(self, user_id: str) -> Session | None:
        return decode(user_id, self.client.get(self.keys.session(user_id)))

    def save(self, session: Session) -> None:
        session.updated_at = time.time()
        self.client.set(self.keys.session(session.user_id), session.to_json(), ex=self.ttl)

    def delete(self, user_id: str) -> None:
        self.client.delete(self.keys.session(user_id))
