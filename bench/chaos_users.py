"""The chaos run's users and its accounting.

``Registrant`` answers the registration form (conversations/registration/form.py) with
valid, per-user distinct answers; ``Walkers`` keep several of them going, one
event after the previous one's delivery, as people wait for the bot;
``Probe`` polls ``/healthz`` and sends a fresh user's follow every 0.25 s.

``account`` turns what was sent into the table's figures, from the effects
only: an event is *answered* when its ``ProcessedEvent`` row exists (the SQL
effect) or a reply/push for it reached the platform; *lost* otherwise;
*duplicated* when its reply token was used twice or its user got more pushes
than events of theirs that went unreplied. ``check_drafts`` reads each user's
``Expert.draft`` (with the app's storage code) and says which answers landed
in the wrong field or not at all.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from datetime import date
from typing import Any

import requests

from bench.chaos_load import Delivery, Sender, Tracked, user_id
from simulator import events

FAMILY = [("山田", "やまだ"), ("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"),
          ("伊藤", "いとう"), ("渡辺", "わたなべ"), ("中村", "なかむら"), ("小林", "こばやし"), ("加藤", "かとう")]
GIVEN = [("太郎", "たろう"), ("花子", "はなこ"), ("健一", "けんいち"), ("美咲", "みさき"), ("大輔", "だいすけ"),
         ("陽子", "ようこ"), ("翔太", "しょうた"), ("恵子", "けいこ"), ("拓也", "たくや")]
# The registration form's first questions, in the order the profile flow asks them
# (conversations/registration/form.py TRANSITIONS), and the draft keys each answer is saved under.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "follow": (), "terms": ("terms_version",), "institution": ("institution_id",),
    "name": ("family_name", "given_name"), "kana": ("kana_family", "kana_given"), "birthdate": ("birthdate",),
    "phone": ("phone",), "email": ("email",), "postal": ("postal",), "address": ("address",),
}
STEPS = list(STEP_FIELDS)


# --- registration users ------------------------------------------------------------------------


class Registrant:
    """One applicant answering the form with valid, per-user distinct answers."""

    def __init__(self, label: str, index: int, code: str, institution_id: int):
        self.id = user_id(label)
        fam, giv = FAMILY[index % len(FAMILY)], GIVEN[(index // len(FAMILY)) % len(GIVEN)]
        n = int(hashlib.sha256(label.encode()).hexdigest()[:8], 16)
        self.answers: dict[str, str | None] = {
            "follow": None, "terms": "同意する", "institution": code,
            "name": f"{fam[0]} {giv[0]}", "kana": f"{fam[1]} {giv[1]}",
            "birthdate": f"19{60 + n % 30}年{1 + n % 12}月{1 + n % 28}日",
            "phone": f"090-{1000 + n % 9000:04d}-{1000 + (n // 9000) % 9000:04d}",
            "email": f"c{n % 100000}.{index}@example.com",
            "postal": f"{100 + n % 800}-{n % 10000:04d}",
            "address": f"東京都千代田区丸の内{1 + n % 3}-{1 + n % 9}-{1 + n % 7}",
        }
        self.institution_id = institution_id

    def event(self, step: str, token: str | None, at: float | None = None) -> dict[str, Any]:
        """The event for ``step``; ``at``: when the user sends it (LINE's timestamp), default now."""
        ts = int((at or time.time()) * 1000)
        if step == "follow":
            return events.follow(self.id, token or events.new_reply_token(), timestamp=ts)
        return events.text(self.id, str(self.answers[step]), token or events.new_reply_token(), timestamp=ts)

    def expected(self) -> dict[str, Any]:
        """The draft values the app's own parsers make of these answers."""
        from domain.normalize import clean, parse_kana_name, parse_person_name
        from domain.validators import parse_birthdate, parse_email, parse_phone, parse_postal_code

        a = self.answers
        fam, giv = parse_person_name(str(a["name"]))
        kf, kg = parse_kana_name(str(a["kana"]))
        return {
            "terms_version": ..., "institution_id": self.institution_id, "family_name": fam, "given_name": giv,
            "kana_family": kf, "kana_given": kg,
            "birthdate": parse_birthdate(str(a["birthdate"]), date.today()).isoformat(),
            "phone": parse_phone(str(a["phone"])), "email": parse_email(str(a["email"])),
            "postal": parse_postal_code(str(a["postal"])), "address": clean(str(a["address"])),
        }


class Walkers:
    """``n`` users answering the form one event after the previous one's delivery (as a
    person waits for the bot), each followed by a fresh user when the form runs out."""

    def __init__(self, stack: Any, sender: Sender, n: int, prefix: str, *, steps: list[str] | None = None,
                 think: float = 0.05, continuous: bool = True, tokens: bool = True):
        self.stack, self.sender, self.n, self.prefix = stack, sender, n, prefix
        self.steps = steps or STEPS
        self.think, self.continuous, self.tokens = think, continuous, tokens
        self.stop_flag = threading.Event()
        self.registrants: list[Registrant] = []
        self.current: dict[int, Registrant] = {}
        self.threads = [threading.Thread(target=self._walk, args=(i,), daemon=True) for i in range(n)]
        self._lock = threading.Lock()

    def start(self) -> "Walkers":
        for t in self.threads:
            t.start()
        return self

    def _walk(self, slot: int) -> None:
        k = 0
        while not self.stop_flag.is_set():
            with self._lock:
                idx = len(self.registrants)
                r = Registrant(f"{self.prefix}:{slot}:{k}", idx, self.stack.code, self.stack.institution_id)
                self.registrants.append(r)
                self.current[slot] = r
            for step in self.steps:
                if self.stop_flag.is_set() or self.sender.stop.is_set():
                    return
                token = self.stack.state.issue_reply_token(r.id) if self.tokens else None
                self.sender.deliver([r.event(step, token)], label=f"walk:{step}", step=step)
                if self.stop_flag.wait(self.think):
                    return
            k += 1
            if not self.continuous:
                return

    def stop(self, timeout: float) -> None:
        self.stop_flag.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


class Probe:
    """Polls ``/healthz`` every 0.1 s and sends a follow of a fresh user every 0.25 s
    (one attempt, no redelivery): when did the bot answer and apply events again?"""

    def __init__(self, stack: Any, sender: Sender, prefix: str):
        self.stack, self.sender, self.prefix = stack, sender, prefix
        self.health: list[tuple[float, int | str]] = []
        self.hooks: list[tuple[Delivery, str]] = []  # (delivery, reply token)
        self.stop_flag = threading.Event()
        self._threads = [threading.Thread(target=self._health, daemon=True),
                         threading.Thread(target=self._hooks, daemon=True)]

    def start(self) -> "Probe":
        for t in self._threads:
            t.start()
        return self

    def _health(self) -> None:
        s = requests.Session()
        while not self.stop_flag.wait(0.1):
            try:
                code: int | str = s.get(self.stack.url + "/healthz", timeout=1).status_code
            except requests.RequestException:
                code = "error"
            self.health.append((time.time(), code))

    def _hooks(self) -> None:
        i = 0
        while not self.stop_flag.wait(0.25):
            uid = user_id(f"{self.prefix}:probe:{i}")
            i += 1
            token = self.stack.state.issue_reply_token(uid)
            d = self.sender.deliver_async([events.follow(uid, token)], label="probe", redeliver=False,
                                          track=False, timeout_s=3)
            self.hooks.append((d, token))

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self._threads:
            t.join(5)
        for d, _ in list(self.hooks):
            d.done.wait(5)

    def recovery(self, t0: float, replies: dict[str, float]) -> tuple[float | None, float | None, float | None]:
        """(seconds to /healthz 200, seconds to a webhook answered and applied, max of both)
        after wall time ``t0``; ``replies``: reply token → delivery time."""
        h = next((t for t, code in self.health if t >= t0 and code == 200), None)
        w = None
        for d, token in list(self.hooks):
            ok = d.first_200
            if ok is None or token not in replies:
                continue
            at = max(ok, replies[token])
            if at >= t0 and (w is None or at < w):
                w = at
        hs = None if h is None else round(h - t0, 2)
        ws = None if w is None else round(w - t0, 2)
        both = None if hs is None or ws is None else max(hs, ws)
        return hs, ws, both


# --- accounting --------------------------------------------------------------------------------


def reply_times(deliveries: list[dict[str, Any]]) -> dict[str, float]:
    """reply token → when its reply reached the platform."""
    out: dict[str, float] = {}
    for d in deliveries:
        if d.get("via") == "reply" and d.get("replyToken"):
            out.setdefault(d["replyToken"], d["at"])
    return out


def answered_at(t: Tracked, replies: dict[str, float], pushes: dict[str, list[float]]) -> float | None:
    """When event ``t`` was answered: its first 200 and its reply (or, failing a reply, a push
    to its user after it was sent) both done."""
    ok = t.delivery.first_200
    if ok is None:
        return None
    if t.token and t.token in replies:
        return max(ok, replies[t.token])
    later = [at for at in pushes.get(t.user, []) if at >= t.sent_at]
    return max(ok, min(later)) if later else None


def push_times(deliveries: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for d in deliveries:
        if d.get("via") == "push":
            out.setdefault(d["to"], []).append(d["at"])
    return out


def account(stack: Any, tracked: list[Tracked]) -> dict[str, Any]:
    """sent / answered / lost / duplicated (+ unreplied) for ``tracked`` events, from the effects."""
    deliveries = stack.state.all_deliveries()
    with stack.db() as db:
        applied = db.processed([t.event_id for t in tracked])
    by_token = Counter(d.get("replyToken") for d in deliveries if d.get("via") == "reply" and d.get("replyToken"))
    pushes = Counter(d["to"] for d in deliveries if d.get("via") == "push")
    seen: set[str] = set()
    answered = lost = dup = 0
    unreplied: Counter[str] = Counter()
    lost_ids: list[str] = []
    for t in tracked:
        if t.event_id in seen:  # the same event tracked twice (redelivered copies): count it once
            continue
        seen.add(t.event_id)
        replied = by_token.get(t.token, 0) if t.token else 0
        if t.event_id in applied or replied:
            answered += 1
        else:
            lost += 1
            lost_ids.append(f"{t.step}@{t.user[:9]}")
        dup += max(0, replied - 1)
        if not replied:
            unreplied[t.user] += 1
    not_answered = 0
    for u in {t.user for t in tracked}:
        dup += max(0, pushes.get(u, 0) - unreplied[u])
        not_answered += max(0, unreplied[u] - pushes.get(u, 0))
    return {"sent": len(seen), "answered": answered, "lost": lost, "duplicated": dup,
            "no_reply": not_answered, "lost_sample": lost_ids[:5]}


def check_drafts(stack: Any, registrants: list[Registrant], tracked: list[Tracked]) -> dict[str, Any]:
    """Per user: answers stored under another question's key (wrong), answers sent but not in the
    draft (not applied: re-asked). Only the steps each user actually sent are expected."""
    sent: dict[str, set[str]] = {}
    for t in tracked:
        sent.setdefault(t.user, set()).add(t.step)
    with stack.db() as db:
        drafts = db.drafts([r.id for r in registrants])
    wrong_fields = 0
    wrong_users: list[str] = []
    missing_users: list[str] = []
    samples: list[str] = []
    missing_samples: list[str] = []
    for r in registrants:
        steps = sent.get(r.id, set())
        draft = drafts.get(r.id, {})
        want = r.expected()
        wrong = missing = 0
        for step in steps:
            for key in STEP_FIELDS.get(step, ()):
                value = draft.get(key)
                if value is None:
                    missing += 1
                    if len(missing_samples) < 5:
                        missing_samples.append(f"{step}@{r.id[:9]}")
                elif want[key] is not ... and value != want[key]:
                    wrong += 1
                    if len(samples) < 5:
                        samples.append(f"{key}={value!r} (sent {want[key]!r})")
        # An answer saved under a question the user never answered is in the wrong field too.
        for step, keys in STEP_FIELDS.items():
            if step not in steps:
                for key in keys:
                    if draft.get(key) is not None:
                        wrong += 1
                        if len(samples) < 5:
                            samples.append(f"{key}={draft.get(key)!r} (never sent)")
        wrong_fields += wrong
        if wrong:
            wrong_users.append(r.id)
        if missing:
            missing_users.append(r.id)
    broken = set(wrong_users) | set(missing_users)
    return {"users": len(registrants), "wrong_fields": wrong_fields, "users_wrong": len(wrong_users),
            "users_not_applied": len(missing_users), "users_broken": len(broken), "wrong_samples": samples,
            "not_applied_samples": missing_samples}
