"""Check-in / check-out (GPS) at the business: flow 7.

Reads top to bottom like the conversation: 「チェックイン」 or 「チェックアウト」
(rich menu) → which dispatch (skipped when there is only one) → the
location (LINE's location picker) → recorded, or, after three tries beyond
the radius, the reason → recorded as flagged with an exception report.

Which dispatch may be checked, and when, is in ``attendance_rules``; what a
location shows and what the secretariat is told about it, in ``readings``.
Nothing out of range is silently accepted: it is recorded with the
expert's reason, flagged, and pushed to the secretariat.

This module is the feature as others see it: ``handlers.router`` registers
``FLOWS`` and ``ACTIONS`` and asks :func:`at_rest`; the report flow opens
from check-out (:func:`on_check_out`), enters through :func:`opening` and
shows reviewers :func:`points_to_check`. A redelivered event is deduped by
the webhook, and ``Attendance.event_id`` is UNIQUE.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from linebot.v3.messaging import LocationAction, Message, QuickReplyItem

from conversations.commission import acceptance as commission
from conversations.dispatch.attendance_rules import (
    IN,
    OUT,
    VERB,
    candidates,
    check_of,
    checks_of,
    day_bounds,
    exceptions_of,
    expert_dispatches,
    label,
    off_schedule_text,
    usable,
)
from conversations.dispatch.readings import FLAG_LABELS, Reading, flags_for, metres, secretariat_notice
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Advance, Finish, Flow, Handoff, Invalid, Outcome, Stay, Step
from conversations.kit.steps import choose, reason_from
from conversations.roles import secretariat_ids
from domain import clock
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH
from storage import repo
from storage.models import Attendance, Dispatch, ExceptionReport
from storage.sessions import Session

TRIGGER = {IN: "check_in", OUT: "check_out"}  # its move in the dispatch's status machine (domain.statuses)
START_WORDS = {IN: ("チェックイン",), OUT: ("チェックアウト",)}

PC_NOTE = "※位置情報はスマートフォンのLINEアプリから送れます（パソコン版LINEでは送れません）。"


# --- recording a check ------------------------------------------------------------------


def record(s: Session, ctx: Context, d: Dispatch, kind: str, reading: Reading,
           reason: str | None = None, misses: list[int] | None = None) -> Outcome:
    """Write the check (and the exception report), tell the secretariat, answer the expert."""
    if Attendance.select().where(Attendance.event_id == reading.event_id).exists():
        return Finish([msg.text("この位置情報はすでに記録されています。")])
    flags = (["out_of_range"] if reason is not None else []) + flags_for(kind, reading, d)
    before = d.status
    try:
        # Moved first: a dispatch cancelled meanwhile gets no check recorded either. A check-out
        # writes its time with the status: the report is owed from then (``domain.statuses``).
        DISPATCH.move(d, TRIGGER[kind], actor=ctx.user_id, event_id=ctx.event_id,
                      changes={"report_due_at": reading.line_ts} if kind == OUT else None)
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
             f"時刻：{clock.hhmm(ctx.program.timezone, reading.line_ts)}", f"事業所から{metres(reading.distance)}"]
    if kind == OUT:
        check_in = check_of(d, IN)
        if check_in is not None:
            minutes = max(0, int((reading.line_ts - check_in.line_timestamp).total_seconds() // 60))
            since = clock.hhmm(ctx.program.timezone, check_in.line_timestamp)
            lines.append(f"経過時間：{clock.duration(minutes)}／チェックイン {since}")
    if reason is not None:
        lines.append("範囲外のため、理由とともに例外として記録し、事務局に報告しました。")
    off = off_schedule_text(ctx, d, reading.line_ts) if kind == IN else None
    if off is not None:  # allowed, but the reviewer and the secretariat see it as 要確認 on the report
        lines.append(f"{off}です。事務局・支援機関で確認します。")
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
    whoever later accepts its report: a check-in far from the scheduled start, the
    flags, and the expert's reason for an exception (SPEC: the secretariat's view
    flags suspicious patterns)."""
    radius = ctx.program.geofence_radius_m
    # Through the backrefs: lists already when a listing prefetched them (``with_checks``).
    attendances = sorted(checks_of(d), key=lambda a: a.id)
    points = [f"{VERB[a.kind]}：" + FLAG_LABELS.get(f, f).format(radius=radius)
              for a in attendances for f in (a.flags or [])]
    points += [f"{VERB[e.kind]}の例外：{e.reason}" for e in sorted(exceptions_of(d), key=lambda e: e.id)]
    check_in = next((a for a in attendances if a.kind == IN), None)
    if check_in is not None:  # far from the scheduled start: judged now from both times (nothing stored)
        off = off_schedule_text(ctx, d, check_in.line_timestamp)
        if off is not None:
            points.insert(0, f"{off}（{clock.hhmm(ctx.program.timezone, check_in.line_timestamp)}）")
    return points


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
        choices = [(f"No.{d.id} {clock.hhmm(ctx.program.timezone, d.scheduled_at)} {d.business.name}", f"派遣No.{d.id}") for d in options]
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
        d = usable(ctx, s.data.get("dispatch"), self.kind, clock.to_local(ctx.program.timezone, reading.line_ts).date())
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
        return [msg.text(f"委嘱条件が改訂されています（{commission.edition(ctx.program)}）。"
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
        done = list(expert_dispatches(ctx).where(Dispatch.status == "completed")
                    .order_by(Dispatch.updated_at.desc()).limit(1))
        today = done and clock.to_local(ctx.program.timezone, done[0].updated_at).date() == ctx.now.date()
        text = "チェックイン中の派遣がないため、チェックアウトできません。派遣先に着いたら、先に「チェックイン」をしてください。"
        if today:
            text = f"派遣No.{done[0].id}（{done[0].business.name}）はチェックアウト済みです。\n" + text
        return msg.text(text, ["チェックイン"] if candidates(ctx, IN) else ())
    checked_in = list(expert_dispatches(ctx).where(Dispatch.status == "checked_in").order_by(Dispatch.scheduled_at))
    if checked_in:
        d = checked_in[0]
        at = check_of(d, IN)
        since = f"（{clock.hhmm(ctx.program.timezone, at.line_timestamp)}）" if at else ""
        return msg.text(f"派遣No.{d.id}（{d.business.name}）はすでにチェックイン済みです{since}。\n"
                        "支援が終わったら「チェックアウト」と送ってください。", ["チェックアウト"])
    text = "本日チェックインできる派遣はありません（チェックインは派遣の予定日に行えます）。"
    _, end = day_bounds(ctx, ctx.now.date())
    upcoming = (expert_dispatches(ctx).where((Dispatch.status == "accepted") & (Dispatch.scheduled_at >= end))
                .order_by(Dispatch.scheduled_at).first())
    if upcoming is not None:
        text += f"\n次の派遣予定：{clock.when_text(ctx.program.timezone, upcoming.scheduled_at)} {upcoming.business.name}（派遣No.{upcoming.id}）"
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
