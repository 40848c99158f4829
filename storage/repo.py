"""The storage interface the conversation layer uses.

Flows call these functions instead of touching peewee queries directly, so
the rules for drafts, audit entries and outbox rows live in one place. The
caller (the webhook) wraps a whole conversation step in one transaction.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from storage import people
from storage.fastsql import Compiled, CompiledCreate
from storage.models import (
    AuditLog,
    Expert,
    FlowDraft,
    Institution,
    LineUser,
    Outbox,
    PersonIndex,
    ProcessedEvent,
    reindex,
    utcnow,
)
from storage.sealed import crypto

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at interviews


def new_code(length: int = 6) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


# --- the statements every event runs (compiled once) ---------------------------------

_NEW_USER = CompiledCreate(LineUser)
_NEW_EXPERT = CompiledCreate(Expert)
_USER_BY_LINE_ID = Compiled(lambda: LineUser.select().where(LineUser.line_user_id == "U"))
_EXPERT_BY_USER = Compiled(lambda: Expert.select().where(Expert.user == 0))
_INSTITUTION_BY_CODE = Compiled(lambda: Institution.select().where(Institution.code == "X"))
_BUMP_REV = Compiled(lambda: LineUser.update(session_rev=LineUser.session_rev + 1, updated_at=utcnow(),
                                             last_event_ms=0).where(LineUser.id == 0))
_MARK_PROCESSED = Compiled(lambda: ProcessedEvent.insert(webhook_event_id="e", line_user_id="u", processed_at=utcnow()))
_SAVE_DRAFT = Compiled(lambda: Expert.update(draft={}, updated_at=utcnow()).where(Expert.id == 0))
_SAVE_DRAFT_AND_INSTITUTION = Compiled(lambda: Expert.update(draft={}, updated_at=utcnow(), institution=0)
                                       .where(Expert.id == 0))
_AUDIT = Compiled(lambda: AuditLog.insert(at=utcnow(), actor="a", action="a", target=None, before=None, after=None,
                                          reason=None, event_id=None))


def mark_processed(webhook_event_id: str, line_user_id: str) -> None:
    """The permanent dedupe guard; raises IntegrityError for an event seen before."""
    _MARK_PROCESSED.execute(webhook_event_id, line_user_id, utcnow())


# --- users -----------------------------------------------------------------

def get_user(line_user_id: str) -> LineUser | None:
    return _USER_BY_LINE_ID.first(LineUser, line_user_id)


def ensure_user(line_user_id: str) -> LineUser:
    return user_for_event(line_user_id)[0]


def user_for_event(line_user_id: str) -> tuple[LineUser, bool]:
    """The user, and whether this call created them: a user created just now has nothing
    in SQL yet (no draft, no record can point at a row that did not exist)."""
    user = get_user(line_user_id)
    if user is None:
        return _NEW_USER.create(line_user_id=line_user_id), True
    return user, False


def set_following(user: LineUser, following: bool) -> None:
    if user.following != following:
        user.following = following
        user.updated_at = utcnow()
        user.save(only=[LineUser.following, LineUser.updated_at])


def bump_session_rev(user: LineUser, event_ms: int = 0) -> int:
    """Advance the user's step counter (and the latest applied LINE timestamp) inside the step's transaction.

    The caller holds the user's lock, so the row cannot have moved since it
    was read: no need to read it back.
    """
    latest = max(user.last_event_ms or 0, event_ms) or None
    _BUMP_REV.execute(1, latest, utcnow(), user.id)  # peewee orders SET by the model's fields
    user.session_rev += 1
    user.last_event_ms = latest
    return user.session_rev


def arrived_late(user: LineUser, event_ms: int) -> bool:
    """True when a later event of this user was already applied (LINE's timestamps)."""
    return bool(event_ms and user.last_event_ms and event_ms < user.last_event_ms)


# --- institutions ------------------------------------------------------------

INSTITUTION_KINDS = {
    "認定経営革新等支援機関": "認定経営革新等支援機関",
    "認定支援機関": "認定経営革新等支援機関",
    "よろず支援拠点": "よろず支援拠点",
    "よろず": "よろず支援拠点",
}


def create_institution(name: str, kind: str) -> Institution:
    full_kind = INSTITUTION_KINDS.get(kind.strip())
    if full_kind is None:
        raise ValueError(f"unknown institution type: {kind}")
    while True:
        code = new_code()
        if not Institution.select().where(Institution.code == code).exists():
            break
    return Institution.create(name=name.strip(), kind=full_kind, code=code)


def institution_by_code(code: str) -> Institution | None:
    return _INSTITUTION_BY_CODE.first(Institution, code)


# --- experts and drafts --------------------------------------------------------

_EXPERT = "_expert_of_this_event"  # per-event cache on the LineUser instance
_NOTHING_INDEXED = people.fingerprint([])


def expert_of(user: LineUser) -> Expert | None:
    """The user's expert record. Cached on the ``LineUser`` object, which lives
    for one event, because a step asks for it several times."""
    if _EXPERT not in user.__dict__:
        user.__dict__[_EXPERT] = _EXPERT_BY_USER.first(Expert, user.id)
    return cast("Expert | None", user.__dict__[_EXPERT])


def ensure_expert(user: LineUser) -> Expert:
    expert = expert_of(user)
    if expert is None:
        # A new expert has nothing to index, and no index rows yet: their fingerprint says so,
        # so creating them does not delete three tables' rows that cannot exist.
        expert = _NEW_EXPERT.create(user=user, status="draft", draft={}, index_fp=_NOTHING_INDEXED)
        reindex(expert)  # what Expert.save does after writing (nothing, for nothing indexed)
        user.__dict__[_EXPERT] = expert
    return expert


def save_flow_draft(user: LineUser, flow: str, state: str, data: dict[str, Any]) -> None:
    """Keep a flow's answers and position in SQL (one row per user and flow)."""
    updated = (FlowDraft.update(state=state, data=data, updated_at=utcnow())
               .where((FlowDraft.user == user) & (FlowDraft.flow == flow)).execute())
    if not updated:
        FlowDraft.create(user=user, flow=flow, state=state, data=data)


def flow_draft(user: LineUser, flow: str, newer_than: datetime) -> FlowDraft | None:
    """The user's saved answers in ``flow``, if written after ``newer_than`` (UTC naive)."""
    return FlowDraft.get_or_none((FlowDraft.user == user) & (FlowDraft.flow == flow)
                                 & (FlowDraft.updated_at > newer_than))


def delete_flow_draft(user: LineUser, flow: str) -> None:
    FlowDraft.delete().where((FlowDraft.user == user) & (FlowDraft.flow == flow)).execute()


def merged(draft: dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    """``draft`` with ``fields`` set (a ``None`` value removes its key); ``draft`` is not changed."""
    result = dict(draft or {})
    for key, value in fields.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def update_draft(expert: Expert, **fields: Any) -> None:
    """Save answers the moment they are given: nothing typed is ever lost."""
    draft = merged(expert.draft, fields)
    expert.draft = draft
    expert.updated_at = utcnow()
    # Precompiled UPDATEs: this runs for nearly every answer.
    if "institution_id" in fields:
        expert.institution = fields["institution_id"]
        # (peewee orders SET columns as the model declares them)
        _SAVE_DRAFT_AND_INSTITUTION.execute(fields["institution_id"], Expert.draft.db_value(draft), expert.updated_at,
                                            expert.id)
    else:
        _SAVE_DRAFT.execute(Expert.draft.db_value(draft), expert.updated_at, expert.id)
    expert._dirty.difference_update({"draft", "updated_at", "institution"})  # type: ignore[attr-defined]  # peewee's per-instance dirty set has no stub
    if people.INDEXED_KEYS & fields.keys():
        reindex(expert)


def clear_draft(expert: Expert) -> None:
    expert.draft = {}
    expert.institution = None
    expert.updated_at = utcnow()
    expert.save()


# --- audit and outbox --------------------------------------------------------------

def audit(
    actor: str,
    action: str,
    target: str | None = None,
    before: str | None = None,
    after: str | None = None,
    reason: str | None = None,
    event_id: str | None = None,
) -> None:
    _AUDIT.execute(utcnow(), actor, action, target, before, after, reason, event_id)


def queue_push(to: str, messages: list[dict[str, Any]], reason: str) -> Outbox:
    """Record a push; the webhook enqueues delivery after the transaction commits."""
    return Outbox.create(to=to, messages=messages, reason=reason)


MULTICAST = "multicast"  # Outbox.to of a row whose recipients are listed in ``recipients``
MULTICAST_MAX = 500  # LINE's limit of user ids per multicast call


def queue_multicast(to: Sequence[str], messages: list[dict[str, Any]], reason: str) -> list[Outbox]:
    """Record the same messages for many users: one outbox row (one API call) per 500 of them."""
    return [Outbox.create(to=MULTICAST, recipients=json.dumps(list(to[i:i + MULTICAST_MAX])), messages=messages,
                          reason=reason)
            for i in range(0, len(to), MULTICAST_MAX)]



# --- people, by their blind indexes -------------------------------------------------


def experts_matching(kind: str, typed: str) -> list[int]:
    """Ids of experts with a ``kind`` token (name / phone / email) equal to what was typed (``storage.people``)."""
    query = matching_query(kind, typed)
    if query is None:
        return []
    return sorted(int(row[0]) for row in cast(Iterable[tuple[int]], query.tuples()))


def matching_query(kind: str, typed: str) -> Any:
    """The same as a subquery of expert ids (None when nothing typed makes a token): a list can
    count and page through its matches in SQL, not bind five hundred ids twice."""
    wanted = [people.digest(crypto(), kind, t) for t in people.query_tokens(kind, typed)]
    if not wanted:
        return None
    return (PersonIndex.select(PersonIndex.expert).distinct()
            .where((PersonIndex.kind == kind) & PersonIndex.digest.in_(wanted)))
