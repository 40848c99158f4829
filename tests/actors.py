"""Helpers that set up the people of a scenario *through LINE*, as they would, and look at
what they left behind (their conversation's state, their application's draft).

Shared by the scenario tests, so a tap, a location or a photo is sent the same way everywhere.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from geopy.distance import geodesic
from PIL import Image

from conversations import roles
from storage import repo
from storage.models import Business, Dispatch, Expert, Institution, LineUser
from tests.helpers import TOKYO

SEC = "U" + "5ec" + "0" * 29
REVIEWER = "U" + "1ee" + "0" * 29
OTHER_REVIEWER = "U" + "2ee" + "0" * 29
EXPERT = "U" + "e0" + "0" * 30


def secretariat(bot_app, user: str = SEC) -> str:
    """The first secretariat member: the CLI prints a code, they send it in LINE."""
    code = roles.issue_code("secretariat", "cli").code
    texts = bot_app.text(user, f"事務局登録 {code}")
    assert "事務局メンバーとして登録しました" in texts[0], texts
    return user


def institution_with_reviewer(bot_app, name: str, reviewer: str, sec: str = SEC) -> Institution:
    """The secretariat adds the institution and issues a reviewer code; the reviewer sends it."""
    texts = bot_app.text(sec, f"/institution add {name} よろず")
    assert "を登録しました" in texts[0], texts
    inst = Institution.get(Institution.name == name)
    texts = bot_app.text(sec, f"/code reviewer {inst.id}")
    code = re.search(r"担当者登録 ([A-Z2-9]{10})", texts[-1]).group(1)
    texts = bot_app.text(reviewer, f"担当者登録 {code}")
    assert "担当者として登録しました" in texts[0], texts
    return inst


def submitted_application(institution: Institution, user: str = EXPERT, **draft: Any) -> Expert:
    """An application as the profile flow leaves it on 送信 (the flow itself is tested elsewhere)."""
    line_user = repo.ensure_user(user)
    base = {
        "terms_version": "2026-04", "institution_id": institution.id, "institution_name": institution.name,
        "family_name": "山田", "given_name": "太郎", "kana_family": "ヤマダ", "kana_given": "タロウ",
        "birthdate": "1975-04-01", "phone": "+819012345678", "email": "taro@example.jp",
    }
    base.update(draft)
    expert = Expert.create(user=line_user, status="pending_institution", institution=institution, draft=base,
                           family_name=base["family_name"], given_name=base["given_name"],
                           kana=f"{base['kana_family']}　{base['kana_given']}")
    return expert


def role_of(user: str) -> str | None:
    return LineUser.get(LineUser.line_user_id == user).role


def expert_of(user: str) -> Expert:
    """The expert record of a LINE user (their application, then their profile)."""
    return Expert.get(Expert.user == LineUser.get(LineUser.line_user_id == user))


def draft_of(user: str) -> dict[str, Any]:
    """The application as the user has filled it in so far."""
    return expert_of(user).draft


def state_of(bot_app: Any, user: str) -> tuple[str | None, str | None]:
    """``(flow, state)`` of the user's conversation; ``(None, None)`` when they have none."""
    session = bot_app.rt.gate.read_session(user)
    return (session.flow, session.state) if session else (None, None)


def step_of(bot_app: Any, user: str) -> str | None:
    """Only the state (the step) of the user's conversation, ``None`` when they have none."""
    return state_of(bot_app, user)[1]


def tap(bot_app: Any, user: str, data: str) -> list[str]:
    """The user taps a button whose postback data is ``data``; the texts answered."""
    return bot_app.say(user, "postback", data=data)


def pushed_texts(bot_app: Any, user: str) -> list[str]:
    """Everything sent to ``user`` so far, once the worker has sent the queued pushes."""
    bot_app.drain()
    return bot_app.texts_since(user, 0)


def jpeg(color: str = "navy", size: tuple[int, int] = (480, 640)) -> bytes:
    """A plain JPEG of one colour, the size of a phone photo."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def photo(bot_app: Any, color: str = "navy", size: tuple[int, int] = (480, 640)) -> str:
    """A plain JPEG uploaded to the platform as a user's image; its message id."""
    return bot_app.line.add_content(jpeg(color, size), "image/jpeg")


def send_photo(bot_app: Any, user: str, color: str = "navy", size: tuple[int, int] = (480, 640)) -> list[str]:
    """The user sends a photo (a plain JPEG); the texts answered."""
    return bot_app.say(user, "image", messageId=photo(bot_app, color, size))


# Business pin for dispatch scenarios: 東京都千代田区丸の内 (a known point).
BUSINESS_LAT, BUSINESS_LNG = 35.681236, 139.767125


def near(metres: float, bearing: float = 0) -> tuple[float, float]:
    """A point ``metres`` away from the business pin."""
    p = geodesic(meters=metres).destination((BUSINESS_LAT, BUSINESS_LNG), bearing)
    return p.latitude, p.longitude


def send_location(bot_app: Any, user: str, point: tuple[float, float],
                  ts_ms: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """Post one location event (optionally with its LINE timestamp); the texts answered, and the event."""
    event = bot_app.event(user, "location", latitude=point[0], longitude=point[1])
    if ts_ms is not None:
        event["timestamp"] = ts_ms
    return bot_app.send(user, event), event


def commissioned_expert(institution: Institution, user: str = EXPERT, **draft: Any) -> Expert:
    """An expert who went through the whole registration (tested elsewhere)."""
    expert = submitted_application(institution, user, areas=["東京都"], expertise=["経営戦略"], **draft)
    expert.status = "commissioned"
    expert.profile = dict(expert.draft)
    expert.conditions_version = "2026-04"
    expert.save()
    return expert


def pin_business_time(bot_app: Any, hour: int = 12, minute: int = 30) -> datetime:
    """Pin the bot's business time at ``hour:minute`` today (Tokyo) and return it: a scenario
    spanning hours ("checked in 2 h ago") stays on one day whatever hour the suite runs at."""
    import dataclasses

    pinned = datetime.now(TOKYO).replace(hour=hour, minute=minute, second=0, microsecond=0)
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, clock=lambda: pinned)
    return pinned


def utc_naive(aware: datetime) -> datetime:
    """As the database stores times: UTC without tzinfo."""
    return aware.astimezone(timezone.utc).replace(tzinfo=None)


def soon_today() -> datetime:
    """In 5 minutes (UTC naive, as stored) — or a minute ago in the Tokyo day's last 5
    minutes: check-in is only on the dispatch's day, and tests run at any hour."""
    now = datetime.now(timezone.utc)
    soon = now + timedelta(minutes=5)
    if soon.astimezone(TOKYO).date() != now.astimezone(TOKYO).date():
        soon = now - timedelta(minutes=1)
    return soon.replace(tzinfo=None)


def dispatch_for(expert: Expert, reviewer: str, *, when: datetime | None = None, status: str = "accepted",
                 lat: float = BUSINESS_LAT, lng: float = BUSINESS_LNG, name: str = "株式会社テスト製作所",
                 business: Business | None = None) -> Dispatch:
    """A dispatch as the request flow leaves it (the request flow itself is tested elsewhere)."""
    when = when or soon_today()
    business = business or Business.create(institution=expert.institution, name=name, latitude=lat, longitude=lng,
                                           address="東京都千代田区丸の内1-1-1")
    return Dispatch.create(business=business, institution=expert.institution, expert=expert,
                           requested_by=repo.ensure_user(reviewer), theme="経営戦略", scheduled_at=when, status=status)


def say_at(bot_app: Any, user: str, ts_ms: int, kind: str = "text", **fields: Any) -> list[str]:
    """Send one event stamped ``ts_ms`` by LINE (a message the user sent then); the texts answered.

    The bot applies one user's events in LINE's order, so a scenario that back-dates an
    event ("checked in at 10:20, delivered at 12:30") back-dates what the user sent before it too.
    """
    event = bot_app.event(user, kind, **fields)
    event["timestamp"] = ts_ms
    return bot_app.send(user, event)

