"""Check-in / check-out (GPS) at the business: flow 7.

Reads top to bottom like the conversation: 「チェックイン」 or 「チェックアウト」
(rich menu) → which dispatch (skipped when there is only one) → the
location (LINE's location picker) → recorded, or, after three tries beyond
the radius, the reason → recorded as flagged with an exception report.

A LINE location is a pin the sender can move, so the position is
self-reported. We keep what we can check: LINE's event timestamp next to
our receive time, the pin and its distance to the business pin (geopy
geodesic; the business pin is the truth, no geocoding). Patterns worth a
look (pin exactly on the business point, identical in/out points, a check
received long after its event time, out of range) are stored as ``flags``
and pushed to the secretariat; nothing out of range is silently accepted.

Guards: only commissioned experts, only their own dispatches, check-in
only for an accepted dispatch scheduled today (Asia/Tokyo, ± a tolerance),
check-out only after check-in, one of each per dispatch. A redelivered
event is deduped by the webhook, and ``Attendance.event_id`` is UNIQUE.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, TypeVar

from geopy.distance import geodesic
from linebot.v3.messaging import LocationAction, Message, QuickReplyItem

from conversations.commission import acceptance as commission
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Advance, Finish, Flow, Handoff, Invalid, Outcome, Stay, Step
from conversations.kit.steps import choose, reason_from
from conversations.roles import secretariat_ids
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH
from storage import repo
from storage.models import Attendance, Business, Dispatch, ExceptionReport, Expert
from storage.sessions import Session

MAX_OPTIONS = 12  # quick reply: 13 items at most, one kept for キャンセル
SAME_POINT_M = 1.0  # closer than this is "the same point"
LATE_EVENT = timedelta(minutes=10)  # received this long after LINE's timestamp

IN, OUT = "in", "out"
VERB = {IN: "チェックイン", OUT: "チェックアウト"}
STATUS_BEFORE = {IN: "accepted", OUT: "checked_in"}
TRIGGER = {IN: "check_in", OUT: "check_out"}  # its move in the dispatch's status machine (domain.statuses)
START_WORDS = {IN: ("チェックイン",), OUT: ("チェックアウト",)}

FLAG_LABELS = {
    "out_of_range": "事業所から{radius}m以上離れた位置で記録（3回とも範囲外）",
    "pin_on_business_point": "位置が事業所の登録地点と完全に一致（ピンを動かした可能性）",
    "same_point_in_out": "チェックインとチェックアウトの位置が同一",
    "late_event": "位置情報の送信から受信まで10分以上経過",
}

PC_NOTE = "※位置情報はスマートフォンのLINEアプリから送れます（パソコン版LINEでは送れません）。"


# --- time, distance, dispatches ---------------------------------------------------------


def tolerance_days(ctx: Context) -> int:
    """Days either side of the scheduled (Tokyo) date on which check-in is allowed (program.toml)."""
    return ctx.program.checkin_tolerance_days


def local(ctx: Context, utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(ctx.program.timezone)


def to_utc(aware: datetime) -> datetime:
    return aware.astimezone(timezone.utc).replace(tzinfo=None)


def hhmm(ctx: Context, utc_naive: datetime) -> str:
    return f"{local(ctx, utc_naive):%H:%M}"


def day_text(ctx: Context, utc_naive: datetime) -> str:
    t = local(ctx, utc_naive)
    return f"{t.month}月{t.day}日（{'月火水木金土日'[t.weekday()]}）{t:%H:%M}"


def metres(distance: float) -> str:
    return f"{round(distance):,}m"


def duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}時間{rest}分" if hours else f"{rest}分"


def distance_m(lat: float, lng: float, business: Business) -> float:
    meters: float = geodesic((lat, lng), (business.latitude, business.longitude)).meters
    return meters


def label(d: Dispatch, ctx: Context) -> str:
    return f"派遣No.{d.id} {d.business.name}（{day_text(ctx, d.scheduled_at)}〜）"


def _mine(ctx: Context) -> Any:
    expert = repo.expert_of(ctx.user)
    return Dispatch.select(Dispatch, Business).join(Business).where(Dispatch.expert == expert)


def _day_bounds(ctx: Context, day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the Tokyo days within the tolerance around ``day``."""
    tol = tolerance_days(ctx)
    tz = ctx.program.timezone
    start = datetime.combine(day - timedelta(days=tol), time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=tol + 1), time(0), tzinfo=tz)
    return to_utc(start), to_utc(end)


def on_schedule(ctx: Context, d: Dispatch, day: date) -> bool:
    start, end = _day_bounds(ctx, day)
    return start <= d.scheduled_at < end


def candidates(ctx: Context, kind: str) -> list[Dispatch]:
    """The expert's dispatches this check applies to now, earliest first."""
    query = _mine(ctx).where(Dispatch.status == STATUS_BEFORE[kind])
    if kind == IN:
        start, end = _day_bounds(ctx, ctx.sent_day)
        query = query.where((Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end))
    return list(query.order_by(Dispatch.scheduled_at, Dispatch.id).limit(MAX_OPTIONS))


def check_of(d: Dispatch, kind: str) -> Attendance | None:
    return Attendance.get_or_none((Attendance.dispatch == d) & (Attendance.kind == kind))


def usable(ctx: Context, dispatch_id: object, kind: str, day: date) -> Dispatch | str:
    """The dispatch to record on, or why it can no longer be used (checked again at the last moment)."""
    d = Dispatch.get_or_none(Dispatch.id == dispatch_id)
    expert = repo.expert_of(ctx.user)
    if d is None or expert is None or d.expert_id != expert.id:  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        return "この派遣は見つかりませんでした。"
    if kind == IN and d.status != STATUS_BEFORE[IN]:
        if d.status in ("checked_in", "completed"):
            return f"派遣No.{d.id} はすでにチェックイン済みです。"
        return f"派遣No.{d.id} は現在チェックインできません（取消・変更された可能性があります）。"
    if kind == OUT and d.status != STATUS_BEFORE[OUT]:
        if d.status == "completed":
            return f"派遣No.{d.id} はすでにチェックアウト済みです。"
        return f"派遣No.{d.id} はチェックインされていないため、チェックアウトできません。"
    if kind == IN and not on_schedule(ctx, d, day):
        return f"派遣No.{d.id} の予定日（{day_text(ctx, d.scheduled_at)}）ではないため、チェックインできません。"
    if check_of(d, kind) is not None:
        return f"派遣No.{d.id} はすでに{VERB[kind]}済みです。"
    return d


# --- one location reading ---------------------------------------------------------------


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
        received = to_utc(ctx.now)
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


def record(s: Session, ctx: Context, d: Dispatch, kind: str, reading: Reading,
           reason: str | None = None, misses: list[int] | None = None) -> Outcome:
    """Write the check (and the exception report), tell the secretariat, answer the expert."""
    if Attendance.select().where(Attendance.event_id == reading.event_id).exists():
        return Finish([msg.text("この位置情報はすでに記録されています。")])
    flags = (["out_of_range"] if reason is not None else []) + flags_for(kind, reading, d)
    before = d.status
    try:
        # Moved first: a dispatch cancelled meanwhile gets no check recorded either.
        DISPATCH.move(d, TRIGGER[kind], actor=ctx.user_id, event_id=ctx.event_id)
    except IllegalTransition:
        return Finish([msg.text(f"派遣No.{d.id} は現在{VERB[kind]}できません（取消・変更された可能性があります）。")])
    Attendance.create(dispatch=d, kind=kind, line_timestamp=reading.line_ts, received_at=reading.received,
                      latitude=reading.lat, longitude=reading.lng, distance_m=reading.distance,
                      flagged=bool(flags), flags=flags, event_id=reading.event_id)
    ctx.audit(f"attendance.{kind}", target=f"dispatch:{d.id}", before=before, after=d.status,
              reason=",".join(flags) or None)
    if reason is not None:
        ExceptionReport.create(dispatch=d, kind=kind, reason=reason, distances=misses or [])
        ctx.audit("attendance.exception", target=f"dispatch:{d.id}", after=kind, reason=reason)
    if flags:
        notice = secretariat_notice(ctx, d, kind, reading, flags, reason, misses)
        for sec in secretariat_ids():
            ctx.notify(sec, [notice], "attendance_flagged")

    lines = [f"{VERB[kind]}しました。", f"派遣No.{d.id} {d.business.name}",
             f"時刻：{hhmm(ctx, reading.line_ts)}", f"事業所から{metres(reading.distance)}"]
    if kind == OUT:
        check_in = check_of(d, IN)
        if check_in is not None:
            minutes = max(0, int((reading.line_ts - check_in.line_timestamp).total_seconds() // 60))
            lines.append(f"経過時間：{duration(minutes)}（チェックイン {hhmm(ctx, check_in.line_timestamp)}）")
    if reason is not None:
        lines.append("範囲外のため、理由とともに例外として記録し、事務局に報告しました。")
    if kind == IN:
        lines.append("支援が終わったら「チェックアウト」と送ってください。")
        return Finish([msg.text("\n".join(lines))])
    return open_report(s, ctx, d, [msg.text("\n".join(lines))])


# What check-out hands the session over to. The report flow registers its opening here when it is
# imported (``on_check_out``): it builds on this module (its menu words), so this module cannot
# import it back without an import cycle.
ReportOpening = Callable[[Context, Dispatch, Sequence[Message]], Outcome]
_Opening = TypeVar("_Opening", bound=ReportOpening)
_report_opening: ReportOpening | None = None


def on_check_out(opening: _Opening) -> _Opening:
    """Register what opens the report after a check-out (the report flow, at import)."""
    global _report_opening
    _report_opening = opening
    return opening


def open_report(s: Session, ctx: Context, d: Dispatch, replies: list[Message]) -> Outcome:
    """After check-out the report (支援実施報告書) flow takes over the session: a ``Handoff``."""
    assert _report_opening is not None, "conversations.reports.writing registers the report's opening at import"
    return _report_opening(ctx, d, replies)


def points_to_check(ctx: Context, d: Dispatch) -> list[str]:
    """What the secretariat was told to look at for this dispatch's checks, for
    whoever later accepts its report: the flags, and the expert's reason for an
    exception (SPEC: the secretariat's view flags suspicious patterns)."""
    radius = ctx.program.geofence_radius_m
    points = [f"{VERB[a.kind]}：" + FLAG_LABELS.get(f, f).format(radius=radius)
              for a in Attendance.select().where(Attendance.dispatch == d).order_by(Attendance.id)
              for f in (a.flags or [])]
    points += [f"{VERB[e.kind]}の例外：{e.reason}"
               for e in ExceptionReport.select().where(ExceptionReport.dispatch == d).order_by(ExceptionReport.id)]
    return points


def secretariat_notice(ctx: Context, d: Dispatch, kind: str, reading: Reading, flags: list[str],
                       reason: str | None, misses: list[int] | None) -> Message:
    expert: Expert = d.expert
    radius = ctx.program.geofence_radius_m
    lines = [f"【要確認】{VERB[kind]}の記録",
             f"派遣No.{d.id} {d.business.name}",
             f"専門家：{commission.full_name(expert)}（申請No.{expert.id}）",
             f"時刻：{day_text(ctx, reading.line_ts)}（受信 {hhmm(ctx, reading.received)}）",
             f"事業所から{metres(reading.distance)}",
             "確認事項："]
    lines += ["・" + FLAG_LABELS.get(f, f).format(radius=radius) for f in flags]
    if misses:
        lines.append("各回の距離：" + " / ".join(metres(m) for m in misses))
    if reason is not None:
        lines.append(f"専門家の理由：{reason}")
    return msg.text("\n".join(lines))


# --- the steps --------------------------------------------------------------------------


class PickDispatch(Step):
    name = "pick"
    title = "派遣の選択"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.help = f"{VERB[kind]}する派遣を、番号（1、2…）または「派遣No.〇」で選んでください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        options = candidates(ctx, self.kind)
        s.data["options"] = [d.id for d in options]
        if not options:
            return [msg.text(f"{VERB[self.kind]}できる派遣がありません。「キャンセル」と送ってください。", ["キャンセル"])]
        body = f"{VERB[self.kind]}する派遣を選んでください（番号でも選べます）。\n" + "\n".join(
            f"{n}. {label(d, ctx)}" for n, d in enumerate(options, start=1))
        choices = [(f"No.{d.id} {hhmm(ctx, d.scheduled_at)} {d.business.name}", f"派遣No.{d.id}") for d in options]
        return [msg.text(body, choices + ["キャンセル"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        ids: list[int] = list(s.data.get("options") or [])
        picked = choose(inp, [f"派遣No.{i}" for i in ids])
        match = re.fullmatch(r"(?:派遣)?no\.?\s*(\d+)", picked or inp.text, re.IGNORECASE) if inp.kind == "text" else None
        chosen = int(match.group(1)) if match else None
        if chosen not in ids:
            return Invalid(f"番号（1〜{len(ids)}）または「派遣No.〇」で選んでください。" if ids
                           else "選べる派遣がありません。「キャンセル」と送ってください。")
        s.data["dispatch"] = chosen
        return Advance()


class SendLocation(Step):
    name = "location"
    title = "位置情報の送信"
    leads_to_next = False  # recorded (the flow ends), or ``too_far`` asks the reason

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.help = (f"事業所の近く（登録地点から一定の範囲内）で現在地を送ると{VERB[kind]}が記録されます。"
                     "トーク画面下の「位置情報を送る」、または「＋」→「位置情報」から送れます。\n" + PC_NOTE)

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        d = Dispatch.get_or_none(Dispatch.id == s.data.get("dispatch"))
        radius = ctx.program.geofence_radius_m
        if again:
            body = "事業所の近くで、下の「位置情報を送る」から現在地を送ってください。"
        else:
            body = (f"{VERB[self.kind]}します。\n{label(d, ctx) if d else ''}\n"
                    f"事業所の近く（{radius}m以内）で、下の「位置情報を送る」を押して現在地を送ってください。\n{PC_NOTE}")
        return [location_prompt(body)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind != "location" or inp.latitude is None or inp.longitude is None:
            if inp.kind == "text" and inp.text in START_WORDS[OUT if self.kind == IN else IN]:
                return Invalid(f"{VERB[self.kind]}の途中です。やめる場合は「キャンセル」と送ってから、もう一度お試しください。")
            return Invalid("位置情報を送ってください。下の「位置情報を送る」ボタン、または「＋」→「位置情報」から送れます。\n"
                           "パソコン版LINEでは位置情報を送れないため、スマートフォンのLINEアプリからお願いします。")
        return take_location(s, inp, ctx, self.kind)


def location_prompt(body: str) -> Message:
    return msg.text(body, ["キャンセル"], extra=[QuickReplyItem(action=LocationAction(label="位置情報を送る"))])


def take_location(s: Session, inp: Input, ctx: Context, kind: str) -> Outcome:
    """One location: record it when within the radius, else count a miss."""
    d = usable(ctx, s.data.get("dispatch"), kind, ctx.sent_day)
    if isinstance(d, str):
        return Finish([msg.text(d)])
    reading = Reading.of(inp, ctx, d.business)
    radius = ctx.program.geofence_radius_m
    if reading.distance <= radius:
        return record(s, ctx, d, kind, reading)
    misses: list[int] = s.data.setdefault("misses", [])
    misses.append(round(reading.distance))
    s.data["last"] = reading.to_data()
    far = f"事業所から{metres(reading.distance)}離れています（{radius}m以内で{VERB[kind]}できます）。"
    if len(misses) < ctx.program.geofence_max_misses:
        left = ctx.program.geofence_max_misses - len(misses)
        return Stay([msg.text(f"{far}\n事業所の近くで、もう一度位置情報を送ってください。"
                              f"（あと{left}回範囲外の場合は、理由を伺って例外として記録します）")])
    if s.state == "reason":
        return Stay([msg.text(f"{far}\n理由を入力していただくと、例外として記録します。")])
    return Advance([msg.text(far)], trigger="too_far")


class OutOfRangeReason(Step):
    name = "reason"
    title = "範囲外の理由"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.help = ("続けて事業所から離れた位置だったため、理由を伺っています。"
                     f"入力した理由は事務局に例外報告として届き、{VERB[kind]}は「要確認」として記録されます。"
                     "範囲内で位置情報を送り直すこともできます。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        misses: list[int] = s.data.get("misses", [])
        tries = " / ".join(metres(m) for m in misses)
        return [msg.text(
            f"位置情報が{len(misses)}回とも事業所から{ctx.program.geofence_radius_m}m以上離れていました（{tries}）。\n"
            f"理由を入力してください（例：事業所の登録地点と実際の訪問先が異なる）。"
            f"事務局に例外報告として届け、{VERB[self.kind]}を「要確認」として記録します。",
            ["キャンセル"], extra=[QuickReplyItem(action=LocationAction(label="位置情報を送り直す"))])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind == "location" and inp.latitude is not None and inp.longitude is not None:
            return take_location(s, inp, ctx, self.kind)  # another try, maybe within range now
        reason = reason_from(inp)
        if isinstance(reason, Invalid):
            return reason
        if "last" not in s.data:
            return Finish([msg.text(f"位置情報が見つかりませんでした。もう一度「{VERB[self.kind]}」からお願いします。")])
        reading = Reading.from_data(s.data["last"])
        d = usable(ctx, s.data.get("dispatch"), self.kind, local(ctx, reading.line_ts).date())
        if isinstance(d, str):
            return Finish([msg.text(d)])
        return record(s, ctx, d, self.kind, reading, reason=reason, misses=list(s.data.get("misses", [])))


def _flow(kind: str, name: str) -> Flow:
    return Flow(name, VERB[kind],
                [PickDispatch(kind), SendLocation(kind), OutOfRangeReason(kind)],
                [{"trigger": "too_far", "source": "location", "dest": "reason"}],
                start_words=START_WORDS[kind])


CHECK_IN = _flow(IN, "checkin")
CHECK_OUT = _flow(OUT, "checkout")
FLOW_OF = {IN: CHECK_IN, OUT: CHECK_OUT}


# --- entry from the menu ------------------------------------------------------------------


def opening(ctx: Context, kind: str) -> Handoff | list[Message]:
    """「チェックイン」/「チェックアウト」: checks who and what, then where the flow starts
    (the location itself when there is only one dispatch to choose); else why not."""
    expert = repo.expert_of(ctx.user)
    if expert is None or expert.status != "commissioned":
        return [msg.text("チェックイン・チェックアウトは、委嘱を受けた専門家の方が派遣先で使う機能です。")]
    if kind == IN and commission.needs_consent(ctx, expert):
        return [msg.text(f"委嘱条件が改訂されています（{ctx.program.conditions.version}）。"
                         "チェックインの前に、改訂後の委嘱条件への同意をお願いします。"
                         "同意のあと、もう一度「チェックイン」と送ってください。")] + commission.conditions_messages(ctx)
    options = candidates(ctx, kind)
    if not options:
        return [nothing_to_check(ctx, kind)]
    if len(options) == 1:
        return Handoff(FLOW_OF[kind], "location", {"dispatch": options[0].id}, back=[])
    return Handoff(FLOW_OF[kind], "pick")


def begin(s: Session, ctx: Context, kind: str) -> list[Message]:
    """The menu word at rest: enter the check flow, or say why not."""
    opened = opening(ctx, kind)
    return ENGINE.hand_over(s, ctx, opened) if isinstance(opened, Handoff) else opened


def nothing_to_check(ctx: Context, kind: str) -> Message:
    """Why there is nothing to check in/out, and what to do instead."""
    if kind == OUT:
        done = list(_mine(ctx).where(Dispatch.status == "completed")
                    .order_by(Dispatch.updated_at.desc()).limit(1))
        today = done and local(ctx, done[0].updated_at).date() == ctx.now.date()
        text = "チェックイン中の派遣がないため、チェックアウトできません。派遣先に着いたら、先に「チェックイン」をしてください。"
        if today:
            text = f"派遣No.{done[0].id}（{done[0].business.name}）はチェックアウト済みです。\n" + text
        return msg.text(text, ["チェックイン"] if candidates(ctx, IN) else ())
    checked_in = list(_mine(ctx).where(Dispatch.status == "checked_in").order_by(Dispatch.scheduled_at))
    if checked_in:
        d = checked_in[0]
        at = check_of(d, IN)
        since = f"（{hhmm(ctx, at.line_timestamp)}）" if at else ""
        return msg.text(f"派遣No.{d.id}（{d.business.name}）はすでにチェックイン済みです{since}。\n"
                        "支援が終わったら「チェックアウト」と送ってください。", ["チェックアウト"])
    text = "本日チェックインできる派遣はありません（チェックインは派遣の予定日に行えます）。"
    _, end = _day_bounds(ctx, ctx.now.date())
    upcoming = (_mine(ctx).where((Dispatch.status == "accepted") & (Dispatch.scheduled_at >= end))
                .order_by(Dispatch.scheduled_at).first())
    if upcoming is not None:
        text += f"\n次の派遣予定：{day_text(ctx, upcoming.scheduled_at)} {upcoming.business.name}（派遣No.{upcoming.id}）"
    return msg.text(text)


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    if inp.kind == "text":
        for kind, words in START_WORDS.items():
            if inp.text in words:
                return begin(s, ctx, kind)
        return None
    if inp.kind == "location":
        expert = repo.expert_of(ctx.user)
        if expert is not None and expert.status == "commissioned":
            return [msg.text("位置情報を受け取りましたが、チェックイン・チェックアウトの操作中ではありません。"
                             "先に「チェックイン」または「チェックアウト」と送ってから、位置情報を送ってください。",
                             ["チェックイン", "チェックアウト"])]
    return None


FLOWS = [CHECK_IN, CHECK_OUT]
ACTIONS: dict[str, Any] = {}
