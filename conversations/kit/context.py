"""What a step gets: the user's input (``Input``) and everything else it may use (``Context``).

``Input`` is one LINE event with the transport stripped; the global command
words (戻る, キャンセル …) are recognised here, once. ``Context`` carries the
user, the rules, the time and the side effects a step may ask for (pushes
to others through the outbox, audits, background jobs after commit).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit.places import Geocoder
from conversations.kit.wire import wire
from program import Program
from storage import repo
from storage.models import LineUser

# --- what comes in -----------------------------------------------------------

COMMAND_WORDS: dict[str, tuple[str, ...]] = {
    "cancel": ("キャンセル", "中止", "やめる", "一時停止"),
    "back": ("戻る", "もどる", "前に戻る"),
    "help": ("ヘルプ", "help", "?", "使い方"),
    "restart": ("最初から", "はじめから", "やり直し"),
    "status": ("状況", "ステータス", "じょうきょう"),
    "resume": ("続きから", "つづきから", "再開"),
    "skip": ("スキップ", "とばす"),
}
_WORD_TO_COMMAND = {
    unicodedata.normalize("NFKC", w).lower(): cmd for cmd, words in COMMAND_WORDS.items() for w in words
}


def clean_text(raw: str) -> str:
    """NFKC, trimmed, inner whitespace collapsed: how typed words are compared."""
    return " ".join(unicodedata.normalize("NFKC", raw or "").split())


@dataclass
class Input:
    """One user event, already stripped of LINE's transport details."""

    kind: str  # text | postback | location | image | follow
    text: str = ""  # cleaned (NFKC, trimmed)
    raw_text: str = ""
    data: str = ""  # postback data
    params: dict[str, Any] = field(default_factory=dict)  # datetimepicker result
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    message_id: str | None = None
    # Image bytes, downloaded by the webhook the moment the event arrives
    # (LINE keeps content only for a while); None if the download failed.
    content: bytes | None = None
    image_set: dict[str, Any] | None = None  # {"id", "index", "total"} when sent together
    timestamp_ms: int = 0
    event_id: str | None = None

    @classmethod
    def from_text(cls, raw: str, **kw: Any) -> "Input":
        return cls(kind="text", text=clean_text(raw), raw_text=raw, **kw)

    def command(self) -> str | None:
        """A global command, typed or tapped (postback ``cmd=<name>``)."""
        if self.kind == "text":
            word = self.text.rstrip("。.!！").lower()
            return _WORD_TO_COMMAND.get(word)
        if self.kind == "postback" and self.data.startswith("cmd="):
            name = self.data[4:]
            return name if name in COMMAND_WORDS else None
        return None


@dataclass
class Context:
    """What a step may use besides the session: the user, the rules, time, side effects."""

    user: LineUser
    program: Program
    now: datetime
    event_id: str | None = None
    # When the user sent it: LINE's event timestamp in business time (None
    # when the event has none). A message sent at 23:59 and processed after
    # midnight (a retry, a deferral) still belongs to the day it was sent.
    sent_at: datetime | None = None
    outbox_ids: list[int] = field(default_factory=list)
    # storage.crypto.FieldCrypto: encrypts bank numbers and holder names
    # before they reach the draft; set by the webhook from the runtime.
    crypto: Any = None
    # storage.files.EncryptedFileStore for photos; set by the webhook.
    files: Any = None
    # file id → short-lived signed URL (handlers.files); set by the webhook.
    link_for: Callable[[str], str] | None = None
    # (expert id, viewer's LineUser id) → a short-lived signed URL of the whole
    # application as a web page (handlers.application_page); set by the webhook.
    page_for: Callable[[int, int], str] | None = None
    # Typed address → places, pin → address (handlers.geocoder); set by the webhook.
    # None: no address service, flows offer the pin and typed coordinates only.
    geocoder: Geocoder | None = None
    # Background jobs to schedule / cancel once the step's transaction has
    # committed (the webhook does it: flows never touch the queue).
    jobs: list[tuple[timedelta, str, tuple[Any, ...], str]] = field(default_factory=list)
    cancelled_jobs: list[str] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return self.user.line_user_id

    @property
    def sent_day(self) -> date:
        """The business day the user acted on (see ``sent_at``)."""
        return (self.sent_at or self.now).date()

    def notify(self, to: str, messages: Sequence[Message], reason: str) -> None:
        """Push to someone else, through the outbox (delivered after commit)."""
        row = repo.queue_push(to, [wire(m) for m in messages], reason)
        self.outbox_ids.append(row.id)

    def audit(self, action: str, **kw: Any) -> None:
        repo.audit(self.user_id, action, event_id=self.event_id, **kw)

    def schedule(self, delay: timedelta, job: str, *args: Any, job_id: str) -> None:
        """Run the background job named ``job`` (``handlers.jobs``) after ``delay``, if the step commits."""
        self.jobs.append((delay, job, args, job_id))

    def unschedule(self, job_id: str) -> None:
        self.cancelled_jobs.append(job_id)
