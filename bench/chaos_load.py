"""The chaos run's transport: a LINE-like sender and the ledger of what was sent.

``Sender`` posts signed webhook bodies the way LINE does: a 5xx, a timeout or
a broken connection is redelivered with the same ``webhookEventId`` and
``deliveryContext.isRedelivery: true``, after 0.5, 1, 2, 4, 8, 8 … s, until
``give_up_s`` after the first attempt. Every attempt is kept (time, status)
so a fault can say when the bot answered again. ``deliver_in_order`` sends one
user's events as separate requests at given times, written to the wire
strictly in order, responses awaited in parallel (the ordering fault).
"""
from __future__ import annotations

import copy
import hashlib
import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from simulator import events

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # then 8 s until give-up



def user_id(label: str) -> str:
    return "U" + hashlib.sha256(f"chaos:{label}".encode()).hexdigest()[:32]


# --- what was sent ---------------------------------------------------------------------------


@dataclass
class Attempt:
    t0: float
    t1: float
    status: int | str  # HTTP status, or "timeout" / "conn"


@dataclass
class Delivery:
    """One webhook body (one or more events), delivered until 200/4xx or give-up."""

    label: str
    attempts: list[Attempt] = field(default_factory=list)
    gave_up: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)  # ends a backoff wait early

    @property
    def first_200(self) -> float | None:
        return next((a.t1 for a in self.attempts if a.status == 200), None)

    @property
    def final(self) -> int | str | None:
        return self.attempts[-1].status if self.attempts else None


@dataclass
class Tracked:
    """One valid webhook event we expect the bot to apply."""

    event_id: str
    user: str
    token: str | None
    step: str
    sent_at: float
    delivery: Delivery


class Ledger:
    """Everything sent during one fault (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracked: list[Tracked] = []
        self.deliveries: list[Delivery] = []

    def add(self, delivery: Delivery, tracked: list[Tracked]) -> None:
        with self.lock:
            self.deliveries.append(delivery)
            self.tracked.extend(tracked)

    def attempts(self) -> list[Attempt]:
        with self.lock:
            return [a for d in self.deliveries for a in list(d.attempts)]

    def statuses(self) -> dict[str, int]:
        return dict(Counter(str(a.status) for a in self.attempts()))

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            pending = list(self.deliveries)
        for d in pending:
            if not d.done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True


class Sender:
    """LINE towards the bot: signed posts, redelivery of 5xx/timeouts with backoff."""

    def __init__(self, url: str, secret: str, ledger: Ledger, *, give_up_s: float = 60.0, timeout_s: float = 10.0):
        self.url = url + "/callback"
        self.secret = secret
        self.ledger = ledger
        self.give_up_s = give_up_s
        self.timeout_s = timeout_s
        self.stop = threading.Event()
        self._local = threading.local()

    def halt(self) -> None:
        """No new attempt from now on; pending backoff waits end at once."""
        self.stop.set()
        with self.ledger.lock:
            for d in self.ledger.deliveries:
                d.wake.set()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "s"):
            self._local.s = requests.Session()
        return self._local.s

    def deliver(self, evs: list[Any], *, label: str = "", step: str = "", raw: str | None = None,
                redeliver: bool = True, track: bool | list[Any] = True, timeout_s: float | None = None,
                delivery: Delivery | None = None) -> Delivery:
        """Post ``evs`` (or the ``raw`` body) until 200/4xx or give-up; blocking. ``track``: all
        valid events of ``evs``, none, or the given ones (a malformed batch's valid event)."""
        d = delivery or Delivery(label)
        if delivery is None:
            self.ledger.add(d, self._tracked(evs, track, step or label, time.time(), d))
        try:
            self._run(d, list(evs), raw, redeliver, timeout_s or self.timeout_s)
        finally:
            d.done.set()
        return d

    @staticmethod
    def _tracked(evs: list[Any], track: bool | list[Any], step: str, at: float, d: Delivery) -> list[Tracked]:
        chosen = [e for e in evs if _valid(e)] if track is True else list(track or [])
        return [Tracked(e["webhookEventId"], e["source"]["userId"], e.get("replyToken"), step, at, d)
                for e in chosen]

    def _headers(self, body: str) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "User-Agent": "LineBotWebhook/2.0",
                "x-line-signature": events.sign(body, self.secret)}

    def _run(self, d: Delivery, evs: list[Any], raw: str | None, redeliver: bool, timeout_s: float) -> None:
        """Attempts until 200/4xx or give-up; if ``d`` already has a failed attempt, back off first."""
        start = time.monotonic() - (time.time() - d.attempts[0].t0 if d.attempts else 0.0)
        n = 0
        while not self.stop.is_set():
            if d.attempts:
                wait = BACKOFF[n] if n < len(BACKOFF) else BACKOFF[-1]
                n += 1
                if not redeliver or time.monotonic() - start + wait > self.give_up_s:
                    d.gave_up = True
                    return
                d.wake.wait(wait)
                d.wake.clear()
                if self.stop.is_set():
                    break
                evs = [again(e) for e in evs]
            body = raw if raw is not None else events.body(evs)
            t0 = time.time()
            try:
                r = self._session().post(self.url, data=body.encode("utf-8"), headers=self._headers(body),
                                         timeout=timeout_s)
                status: int | str = r.status_code
            except requests.Timeout:
                status = "timeout"
            except requests.RequestException:
                status = "conn"
                self._local.__dict__.pop("s", None)
            d.attempts.append(Attempt(t0, time.time(), status))
            if isinstance(status, int) and status < 500:
                return
        d.gave_up = True

    min_gap_s = 0.01

    def deliver_in_order(self, items: list[tuple[float, dict[str, Any], str]]) -> list[Delivery]:
        """One user's ``(at, event, step)`` as separate requests, each started at ``at`` — never
        before the previous one was written, nor less than ``min_gap_s`` after it (one dispatcher
        thread per user); responses are awaited, and 5xx/timeouts redelivered, in parallel."""
        ds = []
        for at, e, step in items:
            d = Delivery(f"ordered:{step}")
            self.ledger.add(d, self._tracked([e], True, step, at, d))
            ds.append(d)
        threading.Thread(target=self._dispatch, args=(items, ds), daemon=True).start()
        return ds

    def _dispatch(self, items: list[tuple[float, dict[str, Any], str]], ds: list[Delivery]) -> None:
        where = urlsplit(self.url)
        last = 0.0
        for (at, e, _), d in zip(items, ds):
            at = max(at, last + self.min_gap_s)  # running late never squeezes two requests together
            if at > time.time() and self.stop.wait(at - time.time()):
                for rest in ds:
                    rest.done.set()
                return
            body = events.body([e])
            conn: http.client.HTTPConnection | None = http.client.HTTPConnection(
                where.hostname or "127.0.0.1", where.port or 80, timeout=self.timeout_s)
            t0 = time.time()
            try:
                assert conn is not None
                conn.request("POST", where.path, body=body.encode("utf-8"), headers=self._headers(body))
            except OSError:
                conn.close()
                conn = None
            last = time.time()
            threading.Thread(target=self._first_response, args=(d, e, conn, t0), daemon=True).start()

    def _first_response(self, d: Delivery, e: dict[str, Any], conn: http.client.HTTPConnection | None,
                        t0: float) -> None:
        status: int | str = "conn"
        try:
            if conn is not None:
                r = conn.getresponse()
                r.read()
                status = r.status
        except TimeoutError:
            status = "timeout"
        except (OSError, http.client.HTTPException):
            status = "conn"
        finally:
            if conn is not None:
                conn.close()
        d.attempts.append(Attempt(t0, time.time(), status))
        try:
            if not (isinstance(status, int) and status < 500):
                self._run(d, [e], None, True, self.timeout_s)
        finally:
            d.done.set()

    def deliver_async(self, evs: list[Any], *, at: float | None = None, label: str = "", step: str = "",
                      track: bool | list[Any] = True, **kw: Any) -> Delivery:
        """``deliver`` in its own thread, starting at wall time ``at`` (default now)."""
        d = Delivery(label)
        self.ledger.add(d, self._tracked(evs, track, step or label, at or time.time(), d))

        def run() -> None:
            if at is not None and at > time.time() and self.stop.wait(at - time.time()):
                d.done.set()
                return
            self.deliver(evs, label=label, step=step, delivery=d, **kw)

        threading.Thread(target=run, daemon=True).start()
        return d


def _valid(e: Any) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("webhookEventId"), str) and isinstance(e.get("source"), dict)
            and isinstance(e["source"].get("userId"), str))


def again(e: Any) -> Any:
    """LINE's redelivery of ``e`` (a malformed one is copied as it is, flag set if it can be)."""
    if isinstance(e, dict) and isinstance(e.get("webhookEventId"), str) and isinstance(e.get("source"), dict):
        return events.redelivery(e)
    e = copy.deepcopy(e)
    if isinstance(e, dict):
        e["deliveryContext"] = {"isRedelivery": True}
    return e
