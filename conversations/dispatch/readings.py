"""One location as it arrived, and what in it the secretariat should look at.

A LINE location is a pin the sender can move, so the position is
self-reported. We keep what we can check: LINE's event timestamp next to
our receive time, the pin and its distance to the business pin (geopy
geodesic; the business pin is the truth, no geocoding). Patterns worth a
look (pin exactly on the business point, identical in/out points, a check
received long after its event time, out of range) become ``flags``, which
:func:`secretariat_notice` puts in words.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from geopy.distance import geodesic
from linebot.v3.messaging import Message

from conversations.dispatch.attendance_rules import IN, OUT, VERB, check_of
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from domain import clock
from domain.names import expert_name
from storage.models import Business, Dispatch, Expert

SAME_POINT_M = 1.0  # closer than this is "the same point"
LATE_EVENT = timedelta(minutes=10)  # received this long after LINE's timestamp

FLAG_LABELS = {
    "out_of_range": "事業所から{radius}m以上離れた位置で記録（3回とも範囲外）",
    "pin_on_business_point": "位置が事業所の登録地点と完全に一致（ピンを動かした可能性）",
    "same_point_in_out": "チェックインとチェックアウトの位置が同一",
    "late_event": "位置情報の送信から受信まで10分以上経過",
}


def metres(distance: float) -> str:
    return f"{round(distance):,}m"


def distance_m(lat: float, lng: float, business: Business) -> float:
    meters: float = geodesic((lat, lng), (business.latitude, business.longitude)).meters
    return meters


@dataclass
class Reading:
    """A location as it arrived: the pin, LINE's time and ours, the event."""

    lat: float
    lng: float
    distance: float
    line_ts: datetime  # UTC naive
    received: datetime  # UTC naive
    event_id: str

    @classmethod
    def of(cls, inp: Input, ctx: Context, business: Business) -> "Reading":
        received = clock.to_utc(ctx.now)
        line_ts = (datetime.fromtimestamp(inp.timestamp_ms / 1000, timezone.utc).replace(tzinfo=None)
                   if inp.timestamp_ms else received)
        lat, lng = float(inp.latitude), float(inp.longitude)  # type: ignore[arg-type]
        return cls(lat, lng, distance_m(lat, lng, business), line_ts, received, str(ctx.event_id or inp.event_id))

    def to_data(self) -> dict[str, Any]:
        return {"lat": self.lat, "lng": self.lng, "distance": self.distance, "line_ts": self.line_ts.isoformat(),
                "received": self.received.isoformat(), "event_id": self.event_id}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Reading":
        return cls(float(data["lat"]), float(data["lng"]), float(data["distance"]),
                   datetime.fromisoformat(data["line_ts"]), datetime.fromisoformat(data["received"]),
                   str(data["event_id"]))


def flags_for(kind: str, reading: Reading, d: Dispatch) -> list[str]:
    """What the secretariat should look at for this reading."""
    flags: list[str] = []
    if reading.distance < SAME_POINT_M:
        flags.append("pin_on_business_point")
    if kind == OUT:
        check_in = check_of(d, IN)
        if check_in is not None and geodesic((check_in.latitude, check_in.longitude),
                                             (reading.lat, reading.lng)).meters < SAME_POINT_M:
            flags.append("same_point_in_out")
    if reading.received - reading.line_ts > LATE_EVENT:
        flags.append("late_event")
    return flags


def secretariat_notice(ctx: Context, d: Dispatch, kind: str, reading: Reading, flags: list[str],
                       reason: str | None, misses: list[int] | None) -> Message:
    expert: Expert = d.expert
    radius = ctx.program.geofence_radius_m
    lines = [f"【要確認】{VERB[kind]}の記録",
             f"派遣No.{d.id} {d.business.name}",
             f"専門家：{expert_name(expert)}（申請No.{expert.id}）",
             f"時刻：{clock.when_text(ctx.program.timezone, reading.line_ts)}（受信 {clock.hhmm(ctx.program.timezone, reading.received)}）",
             f"事業所から{metres(reading.distance)}",
             "確認事項："]
    lines += ["・" + FLAG_LABELS.get(f, f).format(radius=radius) for f in flags]
    if misses:
        lines.append("各回の距離：" + " / ".join(metres(m) for m in misses))
    if reason is not None:
        lines.append(f"専門家の理由：{reason}")
    return msg.text("\n".join(lines))
