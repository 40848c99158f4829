"""The HTTP edge: ``POST /callback``.

verify (signature on the raw body) → refuse a replay (an event older than its id is
kept) → dedupe (``evt:{id}`` SET NX) →
serialise (per-user Redis lock, taken before the session is read) → run
the event in one SQL transaction → save the session → reply.

Failure rules: Redis or the database unavailable → 503 quickly with
nothing half-written, so LINE's redelivery can retry; the event's dedupe
marker is released so that redelivery runs. A lock that cannot be had in
time hands the event to the worker queue (never dropped, never a 5xx). A
bug in a flow is logged and apologised for — never a 500.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import peewee
import redis
import structlog
from flask import Blueprint, Response, jsonify, request
from linebot.v3.messaging import Message
from linebot.v3.webhook import SignatureValidator
from rq import Retry

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.places import Remembering
from handlers import event_schema, jobs, outbox, router
from handlers.line_api import LineApiError
from handlers.logs import pseudonym
from handlers.runtime import EVENTS_QUEUE, Runtime, current
from storage import db as storage_db
from storage import repo
from storage.db import database
from storage.files import StoreUnavailable
from storage.sessions import Session, decode
from storage.user_gate import NOT_READ, Entry

log = structlog.get_logger("webhook")
bp = Blueprint("webhook", __name__)

DEFERRED_LOCK_WAIT = 60  # seconds a worker job waits for its turn
# A deferred event already got its 200, so LINE will not redeliver it: the worker
# retries it through an outage of up to ~19 minutes (the database restarting).
DEFERRED_RETRY_INTERVALS = [1, 5, 15, 30, 60, 120, 300, 600]
DEFERRED_HOLD = 30  # seconds a deferred event keeps its place in the user's order until the worker takes it

# A disk that refuses a photo (StoreUnavailable: full, read-only) is unavailable too, not a flow bug.
UNAVAILABLE = (redis.RedisError, peewee.OperationalError, peewee.InterfaceError, StoreUnavailable)
_validators: dict[str, SignatureValidator] = {}


class Unavailable(Exception):
    """Redis or the database did not answer: the request gets a 503."""


def _validator(secret: str) -> SignatureValidator:
    if secret not in _validators:
        _validators[secret] = SignatureValidator(secret)
    return _validators[secret]


@bp.post("/callback")
def callback() -> tuple[Response, int]:
    rt = current()
    request_id = os.urandom(8).hex()  # 64 random bits, as the first half of a uuid4 gave, for less CPU
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        signature = request.headers.get("X-Line-Signature", "")
        body = request.get_data(as_text=True)
        if not signature or not _validator(rt.config.channel_secret).validate(body, signature):
            log.warning("webhook.bad_signature", has_signature=bool(signature))
            return jsonify(message="invalid signature"), 400
        try:
            payload = event_schema.loads(body)
            events = payload["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep to parse
            log.warning("webhook.bad_body")
            return jsonify(message="invalid body"), 400
        try:
            for user_events in _by_user(events).values():
                for order, event in enumerate(user_events):
                    try:
                        accept(rt, event, order)
                    except Unavailable:
                        raise
                    except Exception as exc:
                        # A bug, not the input (the event passed the schema): this event is
                        # lost, but never as a 500 that would drop the rest of the batch too.
                        log.exception("webhook.event_failed", error=type(exc).__name__,
                                      user=pseudonym(event_schema.sender(event)), event_type=event.get("type"))
        except Unavailable as exc:
            log.error("webhook.unavailable", error=str(exc.__cause__ or exc)[:200])
            return jsonify(message="temporarily unavailable"), 503
        return Response(b"{}", mimetype="application/json"), 200  # what jsonify({}) gives, without its encoder
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


def _by_user(events: list[Any]) -> "OrderedDict[str, list[dict[str, Any]]]":
    """Group the well-formed events by sender, keeping each user's order.

    A malformed event is logged and dropped here, before anything reads it: it
    never reaches ``accept()`` (so it sets no dedupe marker), the request is
    still acknowledged, and the other events run. The log line names where the
    event breaks LINE's schema, never the values it holds."""
    groups: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for index, event in enumerate(events):
        problem = event_schema.problem(event)
        if problem is not None:
            log.warning("webhook.malformed_event", index=index, reason=problem,
                        user=pseudonym(event_schema.sender(event)))
            continue
        source = event.get("source") or {}
        key = source.get("userId") or source.get("groupId") or source.get("roomId") or ""
        groups.setdefault(key, []).append(event)
    return groups


def event_score(event: dict[str, Any], order: int = 0) -> float:
    """Where an event stands in its user's order: LINE's timestamp (ms), then its index in the request."""
    timestamp = event.get("timestamp")
    return float((timestamp if isinstance(timestamp, int) and timestamp > 0 else 0) * 1000 + min(order, 999))


def accept(rt: Runtime, event: dict[str, Any], order: int = 0) -> str:
    """Dedupe and serialise one event (in LINE's order), then run it (or defer it). Returns the outcome."""
    started = time.perf_counter()
    raw_source = event.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    user_id = source.get("userId")
    event_id = str(event.get("webhookEventId") or "")
    fields = {"webhook_event_id": event_id, "user": pseudonym(user_id), "event_type": event.get("type")}
    if event.get("mode", "active") == "standby":
        log.info("webhook.event", outcome="ignored_standby", **fields)
        return "ignored_standby"
    if source.get("type") != "user" or not isinstance(user_id, str) or not event_id:
        log.info("webhook.event", outcome="ignored_source", source_type=source.get("type"), **fields)
        return "ignored_source"
    age_days = replay_age(rt, event)
    if age_days is not None:
        # Its id may have been purged (domain.retention): a replayed body must not run again.
        log.warning("webhook.replay_refused", age_days=age_days, **fields)
        return "replay_refused"
    gate = rt.gate
    score = event_score(event, order)
    entry = None
    try:
        entry = gate.enter(event_id, user_id, score, rt.config.lock_wait)
        if entry.status == "duplicate":
            log.info("webhook.event", outcome="duplicate", **fields)
            return "duplicate"
        if entry.status == "queued" and not gate.wait_turn(user_id, entry, rt.config.lock_wait):
            # Keep our place in the user's order while the worker picks the event up.
            assert entry.token is not None
            member = gate.requeue(user_id, entry.member, entry.token, score, DEFERRED_HOLD)
            # The event goes to Redis sealed: it holds what the user typed (a phone number, an address).
            rt.queue(EVENTS_QUEUE).enqueue(process_deferred, seal_event(rt, event), time.time(), entry.token, member,
                                           score, retry=Retry(max=8, interval=DEFERRED_RETRY_INTERVALS))
            log.info("webhook.event", outcome="deferred", **fields)
            return "deferred"
    except redis.RedisError as exc:
        if entry is not None and entry.member:
            _leave_queue(rt, user_id, entry.member)
        _forget_event(rt, event_id)
        raise Unavailable() from exc
    assert entry.token is not None
    try:
        ran = run_event(rt, event, time.time(), entry.token, entry.raw_session)
    except UNAVAILABLE as exc:
        _release(rt, user_id, entry.token)
        _forget_event(rt, event_id)
        raise Unavailable() from exc
    except BaseException:
        _release(rt, user_id, entry.token)
        raise
    # One line per event: who (pseudonym), which flow, state before → after, outcome, ms.
    log.info("webhook.event", outcome=ran.outcome, flow=ran.flow, state_before=ran.state_before,
             state_after=ran.state_after, ms=round((time.perf_counter() - started) * 1000, 1), **fields)
    return ran.outcome


def replay_age(rt: Runtime, event: dict[str, Any]) -> int | None:
    """Days since LINE stamped the event, when that is longer than its id is kept; else None.

    ``ProcessedEvent`` ids are purged after ``processed_event_days`` (plus a
    day's margin), so a signed body captured earlier and sent again could
    otherwise run twice. LINE redelivers within a day or so: an event this
    old is no redelivery. Business time (``program.now``) is the clock, so a
    test that moves it moves this too."""
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return None  # the schema admits no other kind; nothing to judge by
    age = rt.program.now().timestamp() - timestamp / 1000
    if age <= rt.program.retention.processed_event_days * 86400:
        return None
    return int(age // 86400)


@dataclass
class Ran:
    outcome: str
    flow: str | None = None
    state_before: str | None = None
    state_after: str | None = None


def _forget_event(rt: Runtime, event_id: str) -> None:
    try:
        rt.gate.forget_event(event_id)
    except redis.RedisError:
        pass  # it expires; the SQL guard still holds


def _release(rt: Runtime, user_id: str, token: str) -> None:
    try:
        rt.gate.release(user_id, token)
    except redis.RedisError:
        pass  # the lease runs out by itself (within seconds: nobody renews it now)


def _leave_queue(rt: Runtime, user_id: str, member: str) -> None:
    try:
        rt.gate.leave_queue(user_id, member)
    except redis.RedisError:
        pass  # our place expires with its deadline


def seal_event(rt: Runtime, event: dict[str, Any]) -> str:
    """An event as a deferred job carries it: encrypted (RQ keeps job arguments in Redis, and
    failed jobs for a long while)."""
    return rt.crypto.encrypt(json.dumps(event, ensure_ascii=False))


def process_deferred(sealed: str | dict[str, Any], received_at: float, token: str | None = None,
                     member: str | None = None, score: float | None = None) -> str:
    """RQ job: an event whose user was busy; run it in the user's order once its turn comes.

    ``sealed`` is the event from :func:`seal_event` (a plain dict from a job queued by an older build)."""
    rt = current()
    event: dict[str, Any] = json.loads(rt.crypto.decrypt(sealed)) if isinstance(sealed, str) else sealed
    user_id = event["source"]["userId"]
    entry = Entry("queued", token or uuid.uuid4().hex, member=member)
    score = event_score(event) if score is None else score
    if not rt.gate.wait_turn(user_id, entry, DEFERRED_LOCK_WAIT, client=rt.worker_redis, score=score):
        raise RuntimeError("user lock still busy; RQ will retry")
    assert entry.token is not None
    try:
        ran = run_event(rt, event, received_at, entry.token, entry.raw_session)
    except BaseException:
        _release(rt, user_id, entry.token)
        raise
    log.info("webhook.event", outcome=ran.outcome, deferred=True, flow=ran.flow, state_before=ran.state_before,
             state_after=ran.state_after, webhook_event_id=event.get("webhookEventId"), user=pseudonym(user_id),
             waited_ms=round((time.time() - received_at) * 1000, 1))
    return ran.outcome


def run_event(rt: Runtime, event: dict[str, Any], received_at: float, token: str, raw_session: object) -> Ran:
    """Run one event holding the user's lock: SQL commits, the reply goes out, then the
    session is saved and the lock released (one round trip). The lock is held until the
    reply is sent, so one user's replies never overtake each other."""
    user_id: str = event["source"]["userId"]
    event_id: str = event["webhookEventId"]
    # Every line this event causes (the reply call, a failure) says whose it is.
    with structlog.contextvars.bound_contextvars(user=pseudonym(user_id), webhook_event_id=event_id):
        return _run_event(rt, event, user_id, event_id, received_at, token, raw_session)


def _run_event(rt: Runtime, event: dict[str, Any], user_id: str, event_id: str, received_at: float, token: str,
               raw_session: object) -> Ran:
    """``run_event`` inside the event's log context."""
    inp = router.to_input(event)
    if inp.kind == "image" and inp.message_id:
        inp.content = _download(rt, inp.message_id, user_id)
    stored = rt.gate.read_session(user_id) if raw_session is NOT_READ else decode(user_id, raw_session)  # type: ignore[arg-type]
    geocoder = Remembering(rt.geocoder)
    _prefetch(stored, inp, geocoder)
    flow_before = state_before = None
    with storage_db.serialized_writes(), database.atomic() as txn:
        try:
            repo.mark_processed(event_id, user_id)
        except peewee.IntegrityError:
            txn.rollback()
            _release(rt, user_id, token)
            return Ran("duplicate")
        user, new_user = repo.user_for_event(user_id)
        now = rt.program.now()
        sent_at = (datetime.fromtimestamp(inp.timestamp_ms / 1000, timezone.utc).astimezone(now.tzinfo)
                   if inp.timestamp_ms else None)
        ctx = Context(user=user, program=rt.program, now=now, sent_at=sent_at, event_id=event_id,
                      crypto=rt.crypto, files=rt.files, link_for=rt.link_for, page_for=rt.page_for,
                      geocoder=geocoder)
        late = repo.arrived_late(user, inp.timestamp_ms) and not router.carries_target(inp)
        if inp.kind == "unfollow" and not late:  # a late block is history: the user has written since
            repo.set_following(user, False)
            session = None
            replies: list[Message] = []
        else:
            session = _checked(stored, user_id, user.session_rev, ctx, new_user)
            flow_before, state_before = session.flow, session.state
            try:
                with database.atomic():  # a savepoint: a flow bug undoes only the flow's writes
                    replies = router.late(session, inp, ctx) if late else router.route(session, inp, ctx)
            except UNAVAILABLE:
                raise
            except Exception:
                log.exception("flow.error", flow=flow_before, state=state_before, user=pseudonym(user_id))
                ctx.outbox_ids.clear()  # rolled back with the savepoint
                ctx.jobs.clear()
                ctx.cancelled_jobs.clear()
                session = _checked(None, user_id, user.session_rev, ctx)
                replies = [msg.text("申し訳ありません。処理中にエラーが発生しました。お手数ですが、もう一度送ってください。")]
            # A timestamp ahead of our clock (LINE's clock ahead of ours, the simulator's 時計) is
            # remembered as "now": a clock set back later must not make every message look late.
            session.v = repo.bump_session_rev(user, min(inp.timestamp_ms, int(time.time() * 1000)))
    # Committed. From here on, failures must not undo what the user sees.
    _reply(rt, event, replies, ctx)
    outbox.enqueue(ctx.outbox_ids)
    jobs.after_commit(rt, ctx)
    if session is not None:
        session.updated_at = time.time()
    try:
        if not rt.gate.leave(user_id, token, session.to_json() if session is not None else None, event_id):
            # The lease ran out (Redis stalled) and the lock may be someone else's now:
            # the session was left alone; the next event recomputes it from SQL.
            log.warning("session.save_skipped", user=pseudonym(user_id), reason="lock_lost")
    except redis.RedisError as exc:
        # SQL has the answers and the user's step counter moved on, so the
        # next event sees a stale or missing session and recomputes it.
        log.error("session.save_failed", user=pseudonym(user_id), error=type(exc).__name__)
    if session is None:
        return Ran("unfollowed", flow_before, state_before, None)
    return Ran("late" if late else "processed", session.flow or flow_before, state_before, session.state)




def _download(rt: Runtime, message_id: str, user_id: str) -> bytes | None:
    """Fetch an image at once (LINE's content expires); the step explains a failure."""
    try:
        return rt.line.content(message_id)
    except LineApiError as exc:
        log.warning("content.download_failed", status=exc.status, user=pseudonym(user_id))
        return None


def _prefetch(stored: Session | None, inp: Input, geocoder: Remembering) -> None:
    """The current step's slow lookups (an address search), before the transaction opens: with
    SQLite it holds the write lock for everyone. Best effort: the step asks again if need be."""
    flow = ENGINE.flow_of(stored) if stored is not None else None
    step = flow.steps.get(stored.state or "") if flow is not None and stored is not None else None
    if step is None:
        return
    try:
        step.prefetch(stored, inp, geocoder)  # type: ignore[arg-type]  # checked above: stored is a Session
    except Exception:  # noqa: BLE001  # a lookup ahead must never cost the event
        log.warning("prefetch.failed", flow=stored.flow if stored else None, exc_info=True)


def _checked(stored: Session | None, user_id: str, sql_rev: int, ctx: Context, new_user: bool = False) -> Session:
    """The stored session if it is current; else the position recomputed from SQL.

    A user whose row this event created has nowhere to be yet: SQL holds nothing of
    theirs to recompute from (a follow's ten flows' lookups, skipped)."""
    session = stored
    if session is None or session.v != sql_rev:
        session = session or Session(user_id)
        if new_user:
            session.reset()
            return session
        router.recover(session, ctx)
        if session.flow:
            log.info("session.recovered", user=pseudonym(user_id), flow=session.flow, state=session.state,
                     reason="lost" if stored is None else "stale")
    return session


def _reply(rt: Runtime, event: dict[str, Any], replies: list[Message], ctx: Context) -> None:
    """Reply with the token; a refused token (expired, used, late redelivery) becomes a push."""
    if not replies:
        return
    token = event.get("replyToken")
    if token:
        try:
            rt.line.reply(token, replies)
            return
        except LineApiError as exc:
            log.warning("reply.fallback_to_push", status=exc.status, user=pseudonym(ctx.user_id))
    try:
        with database.atomic():
            ctx.notify(ctx.user_id, replies, reason="reply_fallback")
    except UNAVAILABLE as exc:
        log.error("reply.fallback_failed", user=pseudonym(ctx.user_id), error=type(exc).__name__)
