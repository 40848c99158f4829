"""Where each user is in a conversation: one JSON document per user in Redis.

One key per user (``sess:{userId}``, named by :class:`KeyBuilder` with
every other key) holds flow, state and data together — two keys for state
and data drift apart. The one path that reads and writes it is the user
gate (``storage.user_gate``): its Lua scripts read the session while taking
the user's lock and write it while releasing that lock, so a session is
never written by someone who no longer holds the lock. The TTL (30 days)
is refreshed on every write; the *logical* idle timeout (30 min) is checked
by the engine on read to greet the user back.

The session is only a position. The answers live in SQL (the draft), so a
lost or stale session is recomputed from the database, never trusted blindly.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

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

    def daily(self, job: str) -> str:
        """Taken (SET NX, ~a day) by the one worker that runs ``job`` today."""
        return f"{self.prefix}daily:{job}"
