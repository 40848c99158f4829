"""Dispatch requests (支援依頼): a reviewer asks a commissioned expert to visit a business.

Reads top to bottom like the conversation: the request form (事業者 →
法人番号 → 所在地 → テーマ → 専門家 → 日時 → 確認), then the expert's answer
(受諾 / 辞退), then the reviewer's cancel and reschedule before check-in.

A business gets at most ``free_dispatches_per_business`` free dispatches in
the program period. Accepted, checked-in and completed dispatches count;
declined and cancelled ones do not. A request still waiting for the
expert's answer is counted too when a new request is made, so two requests
cannot both slip under the limit; it is checked again on 受諾.

The request in progress is kept in SQL after every answer (``FlowDraft``,
``keeps_answers``), so a lost session resumes it; no business or dispatch
is written until 依頼する.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime, time, timedelta, timezone

from linebot.v3.messaging import DatetimePickerAction, LocationAction, Message, QuickReplyItem

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Advance, Finish, Flow, Invalid, Outcome, Step
from conversations.kit.steps import ConfirmStep, ReasonStep, choose, confirmation, reason_from
from conversations.registration import review
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH, DISPATCH_BEFORE_CHECK_IN, DISPATCH_COUNTED, DISPATCH_LABELS
from domain.validators import PREFECTURES, parse_prefecture
from storage import repo
from storage.models import Business, Dispatch, Expert
from storage.sessions import Session

MAX_CHOICES = 12  # quick reply: 13 items at most, one kept for a typed search hint


# --- rules ----------------------------------------------------------------------------------------


def corporate_number_ok(number: str) -> bool:
    """法人番号: 13 digits whose first digit checks the other 12 (国税庁's formula)."""
    if not re.fullmatch(r"\d{13}", number):
        return False
    base = number[1:]
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return int(number[0]) == 9 - total % 9


def to_utc(local: datetime) -> datetime:
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def to_local(ctx: Context, utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(ctx.program.timezone)


def when_text(ctx: Context, utc_naive: datetime) -> str:
    local = to_local(ctx, utc_naive)
    weekday = "月火水木金土日"[local.weekday()]
    return f"{local.month}月{local.day}日（{weekday}）{local:%H:%M}"


def period_bounds(ctx: Context) -> tuple[datetime, datetime]:
    tz = ctx.program.timezone
    start = datetime.combine(ctx.program.period_start, time.min, tz)
    end = datetime.combine(ctx.program.period_end + timedelta(days=1), time.min, tz)
    return to_utc(start), to_utc(end)


def counted_dispatches(ctx: Context, business_id: int, statuses: tuple[str, ...], exclude: int | None = None) -> int:
    start, end = period_bounds(ctx)
    query = Dispatch.select().where((Dispatch.business == business_id) & Dispatch.status.in_(statuses)
                                    & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end))
    if exclude is not None:
        query = query.where(Dispatch.id != exclude)
    return query.count()


_DT = re.compile(r"^(?:(\d{4})\s*[-/年]\s*)?(\d{1,2})\s*[-/月]\s*(\d{1,2})\s*日?\s*(?:\([^)]*\))?[\sT]*"
                 r"(\d{1,2})(?:\s*[:時]\s*(\d{1,2})?\s*分?)?$")


def parse_when(inp: Input, ctx: Context) -> datetime:
    """A datetimepicker answer or typed 「12/1 10:00」「12月1日 10時30分」 → aware Tokyo datetime."""
    tz = ctx.program.timezone
    if inp.kind == "postback" and inp.params.get("datetime"):
        try:
            return datetime.fromisoformat(str(inp.params["datetime"])).replace(tzinfo=tz)
        except ValueError:
            raise ValueError("日時を読み取れませんでした。もう一度選んでください。") from None
    text = " ".join(unicodedata.normalize("NFKC", inp.raw_text or "").split())
    match = _DT.match(text)
    if not match:
        raise ValueError("日時は「12/1 10:00」や「12月1日 10時30分」のように入力するか、ボタンから選んでください。")
    year, month, day, hour, minute = match.groups()
    today = ctx.now.date()
    try:
        chosen = datetime(int(year) if year else today.year, int(month), int(day), int(hour), int(minute or 0),
                          tzinfo=tz)
    except ValueError:
        raise ValueError("存在しない日時です。日付と時刻をご確認ください。") from None
    if not year and chosen.date() < today:
        chosen = chosen.replace(year=today.year + 1)
    return chosen


def check_when(ctx: Context, chosen: datetime) -> None:
    if chosen <= ctx.now:
        raise ValueError("過去の日時は指定できません。これからの日時を選んでください。")
    if not ctx.program.period_start <= chosen.date() <= ctx.program.period_end:
        raise ValueError(f"事業期間（{ctx.program.period_start:%Y/%m/%d}〜{ctx.program.period_end:%Y/%m/%d}）"
                         "の日時を選んでください。")


def picker(ctx: Context, data: str) -> QuickReplyItem:
    tomorrow = ctx.now.date() + timedelta(days=1)
    return QuickReplyItem(action=DatetimePickerAction(
        label="日時を選ぶ", data=data, mode="datetime", initial=f"{tomorrow.isoformat()}T10:00",
        min=ctx.now.strftime("%Y-%m-%dT%H:%M"), max=f"{ctx.program.period_end.isoformat()}T23:59"))


def reviewer_of(ctx: Context, dispatch: Dispatch) -> bool:
    user = ctx.user
    return user.role == "secretariat" or (user.role == "reviewer" and user.institution_id == dispatch.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def find_dispatch(raw: object) -> Dispatch | None:
    try:
        return Dispatch.get_or_none(Dispatch.id == int(str(raw)))
    except (TypeError, ValueError):
        return None


def expert_name(expert: Expert) -> str:
    return review.display_name(expert)


def describe(ctx: Context, d: Dispatch) -> str:
    return (f"派遣No.{d.id}\n事業者：{d.business.name}\n所在地：{d.business.address or '（地図の位置）'}\n"
            f"テーマ：{d.theme}\n日時：{when_text(ctx, d.scheduled_at)}\n専門家：{expert_name(d.expert)}")


# --- the request form ---------------------------------------------------------------------------------


def _businesses(ctx: Context) -> list[Business]:
    return list(Business.select().where(Business.institution == ctx.user.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                .order_by(Business.name).limit(MAX_CHOICES))


def _name_key(name: str) -> str:
    """Spaces, full/half width and letter case do not make another business: 「株式会社 テスト」 = 「株式会社テスト」."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).casefold()


def _business_named(ctx: Context, name: str) -> Business | None:
    """The institution's business of that name, if it has one (the free-dispatch limit is per business)."""
    key = _name_key(name)
    for business in Business.select().where(Business.institution == ctx.user.institution_id).order_by(Business.id):  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        if _name_key(business.name) == key:
            return business
    return None


class BusinessStep(Step):
    name = "business"
    title = "事業者"
    help = "支援する事業者の名称を入力してください。以前に依頼した事業者はボタン（または番号）で選べます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        known = _businesses(ctx)
        text = "支援する事業者の名称を入力してください。"
        if known:
            text += "\n以前に依頼した事業者は番号でも選べます：\n" + "\n".join(f"{i}. {b.name}" for i, b in enumerate(known, 1))
        return [msg.text(text, [(f"{i}. {b.name}", str(i)) for i, b in enumerate(known, 1)])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind != "text" or not inp.text:
            return Invalid("事業者の名称を文字で入力してください。")
        known = _businesses(ctx)
        if inp.text.isdigit() and 1 <= int(inp.text) <= len(known):
            business = known[int(inp.text) - 1]
            s.data.update(business_id=business.id, business_name=business.name)
            return Advance([msg.text(f"「{business.name}」（登録済み）で依頼します。")], trigger="known")
        name = inp.text.strip()
        if not 2 <= len(name) <= 100:
            return Invalid("事業者の名称は2〜100文字で入力してください。")
        existing = _business_named(ctx, name)
        if existing is not None:  # the same business, however it is typed: its dispatches count
            s.data.update(business_id=existing.id, business_name=existing.name)
            return Advance([msg.text(f"「{existing.name}」（登録済み）で依頼します。")], trigger="known")
        s.data.update(business_id=None, business_name=name)
        return Advance()


class CorporateNumber(Step):
    name = "corporate_number"
    title = "法人番号"
    help = "国税庁が指定する13桁の法人番号です（個人事業主など、ない場合は「なし」）。"
    optional = True

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("法人番号（13桁）を入力してください。ない場合は「なし」と送ってください。", ["なし"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        text = unicodedata.normalize("NFKC", inp.raw_text or "").replace("-", "").replace(" ", "")
        if inp.kind == "text" and text in ("なし", "無し", "ない"):
            s.data["corporate_number"] = None
            return Advance()
        if not corporate_number_ok(text):
            return Invalid("法人番号は13桁の数字です（先頭の検査用数字も含めて確認してください）。ない場合は「なし」。")
        s.data["corporate_number"] = text
        existing = Business.get_or_none(Business.corporate_number == text)
        if existing is not None:
            s.data.update(business_id=existing.id, business_name=existing.name)
            return Advance([msg.text(f"法人番号から登録済みの事業者「{existing.name}」を使います。")], trigger="known")
        return Advance()


_LATLNG = re.compile(r"^(-?\d{1,2}\.\d+)\s*[,、]\s*(-?\d{1,3}\.\d+)$")


class Location(Step):
    name = "location"
    title = "事業者の所在地"
    help = ("事業所の位置を地図で指定して送ってください（スマートフォンのLINEの「位置情報」）。"
            "チェックインの距離の基準になります。パソコンからは「35.6812, 139.7671」のように緯度・経度を入力できます。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("事業所の位置を送ってください（地図でピンを合わせて送信）。チェックインの基準になります。",
                         extra=[QuickReplyItem(action=LocationAction(label="位置情報を送る"))])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind == "location" and inp.latitude is not None and inp.longitude is not None:
            s.data.update(lat=float(inp.latitude), lng=float(inp.longitude), address=inp.address or "")
            return Advance(trigger="next" if _prefecture(s.data["address"]) else "no_prefecture")
        match = _LATLNG.match(unicodedata.normalize("NFKC", inp.raw_text or "").strip())
        if match and -90 <= float(match.group(1)) <= 90 and -180 <= float(match.group(2)) <= 180:
            s.data.update(lat=float(match.group(1)), lng=float(match.group(2)), address="")
            return Advance(trigger="no_prefecture")
        return Invalid("位置情報を送ってください（スマートフォンのLINEで「位置情報を送る」）。"
                       "パソコンからは「35.6812, 139.7671」のように入力できます。")


class Prefecture(Step):
    """Asked only when the pin came without an address naming a prefecture
    (typed coordinates, a pin far from any address): experts are offered by
    the prefectures they cover, so the request needs one."""

    name = "prefecture"
    title = "事業者の都道府県"
    help = "事業所のある都道府県を入力してください（例：東京都、大阪）。対応地域の専門家を探すのに使います。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("事業所のある都道府県を入力してください（例：東京都）。対応できる専門家を探すのに使います。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        pref = parse_prefecture(inp.raw_text or "") if inp.kind == "text" else None
        if pref is None:
            return Invalid("都道府県名を入力してください（例：東京都、大阪府、北海道）。")
        s.data["address"] = f"{pref}{s.data.get('address') or ''}"
        return Advance()


class Theme(Step):
    name = "theme"
    title = "相談テーマ"
    help = "相談の主なテーマを選んでください（番号でも入力できます）。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        options = ctx.program.expertise
        return [msg.text("相談テーマを選んでください。\n" + "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1)),
                         list(options)[:13])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        theme = choose(inp, list(ctx.program.expertise))
        if theme is None:
            return Invalid("一覧のテーマから選んでください（番号でも入力できます）。")
        s.data["theme"] = theme
        return Advance()


def _prefecture(address: str) -> str | None:
    return next((p for p in PREFECTURES if p in address), None)


def request_address(s: Session) -> str:
    """Where the business is: the pin's address, or the known business's record."""
    if s.data.get("address"):
        return str(s.data["address"])
    business = Business.get_or_none(Business.id == s.data["business_id"]) if s.data.get("business_id") else None
    return (business.address or "") if business is not None else ""


def candidates(ctx: Context, theme: str, address: str, search: str | None = None) -> list[Expert]:
    """Commissioned experts for this theme and the business's prefecture (by name or number)."""
    pref = _prefecture(address)
    found = []
    for e in Expert.select().where(Expert.status == "commissioned").order_by(Expert.kana, Expert.id):
        profile = e.profile or e.draft or {}
        if theme not in (profile.get("expertise") or []):
            continue
        if pref and pref not in (profile.get("areas") or []):
            continue
        if search and not (search == str(e.id) or search in expert_name(e).replace("　", "")
                           or search in (e.kana or "").replace("　", "")):
            continue
        found.append(e)
    return found


class ExpertStep(Step):
    name = "expert"
    title = "専門家"
    help = "テーマと地域に対応できる委嘱済みの専門家から選びます。多い場合は氏名の一部や番号で探せます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        found = candidates(ctx, s.data["theme"], request_address(s), s.data.get("search"))
        if not found:
            return [msg.text("条件に合う専門家がいません。「戻る」でテーマを変えるか、氏名で探してください。", ["戻る"])]
        if len(found) > MAX_CHOICES:
            return [msg.text(f"対応できる専門家が{len(found)}名います。氏名の一部または専門家No.を入力して絞り込んでください。")]
        lines = "\n".join(f"No.{e.id} {expert_name(e)}" for e in found)
        return [msg.text(f"専門家を選んでください（{len(found)}名）。\n{lines}",
                         [(f"No.{e.id} {expert_name(e)}", f"No.{e.id}") for e in found])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind != "text" or not inp.text:
            return Invalid("専門家を選ぶか、氏名の一部を入力してください。")
        word = inp.text.removeprefix("No.").removeprefix("No").strip().replace(" ", "")
        found = candidates(ctx, s.data["theme"], request_address(s), word)
        if len(found) == 1:
            s.data.pop("search", None)
            s.data["expert_id"] = found[0].id
            return Advance([msg.text(f"専門家：{expert_name(found[0])}さん")])
        if not found:
            return Invalid(f"「{inp.text[:20]}」に当てはまる対応可能な専門家はいません。")
        s.data["search"] = word
        return Invalid(f"{len(found)}名が当てはまります。もう少し詳しく入力するか、番号で選んでください。")


class When(Step):
    name = "when"
    title = "日時"
    help = "訪問する日時を選んでください。「12/1 10:00」「12月1日 10時30分」のように入力もできます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("訪問日時を選んでください（「12/1 10:00」のように入力もできます）。", extra=[picker(ctx, "dp=when")])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            chosen = parse_when(inp, ctx)
            check_when(ctx, chosen)
        except ValueError as exc:
            return Invalid(str(exc))
        s.data["when"] = to_utc(chosen).isoformat()
        return Advance()


class Confirm(Step):
    name = "confirm"
    title = "依頼内容の確認"
    help = "「依頼する」で専門家に依頼が届きます。直す場合は「戻る」。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        expert = Expert.get_by_id(s.data["expert_id"])
        when = when_text(ctx, datetime.fromisoformat(s.data["when"]))
        text = (f"事業者：{s.data['business_name']}\n法人番号：{s.data.get('corporate_number') or '—'}\n"
                f"テーマ：{s.data['theme']}\n専門家：{expert_name(expert)}\n日時：{when}\n\nこの内容で依頼しますか？")
        return [flex.confirm_card(text, ("依頼する", "c=yes"), ("やめる", "c=no"))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        answer = confirmation(inp, yes=("依頼する",), no=("やめる",))
        if answer == "c=no":
            return Finish([msg.text("依頼を取りやめました。")])
        if answer != "c=yes":
            return Invalid("「依頼する」または「やめる」でお答えください。")
        return Finish(create_request(s, ctx))


def create_request(s: Session, ctx: Context) -> list[Message]:
    """依頼する: check the business's limit, write the dispatch, ask the expert."""
    data = s.data
    business = Business.get_or_none(Business.id == data["business_id"]) if data.get("business_id") else None
    if business is not None:
        limit = ctx.program.free_dispatches_per_business
        used = counted_dispatches(ctx, business.id, DISPATCH_COUNTED + ("requested",))
        if used >= limit:
            ctx.audit("dispatch.limit_refused", target=f"business:{business.id}", before=str(used), after=str(limit))
            return [msg.text(f"「{business.name}」は今年度の無料派遣の上限（{limit}回）に達しているため、依頼できません。"
                             f"（依頼済み・実施済み：{used}回）")]
    else:
        business = Business.create(institution=ctx.user.institution_id, name=data["business_name"],  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                                   corporate_number=data.get("corporate_number"), latitude=data["lat"],
                                   longitude=data["lng"], address=data.get("address") or None)
    expert = Expert.get_by_id(data["expert_id"])
    if expert.status != "commissioned":
        return [msg.text("この専門家は現在依頼を受けられません。別の専門家を選んでください。")]
    dispatch = Dispatch.create(business=business, institution=ctx.user.institution_id, expert=expert,  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                               requested_by=ctx.user, theme=data["theme"],
                               scheduled_at=datetime.fromisoformat(data["when"]), status=DISPATCH.initial)
    ctx.audit("dispatch.requested", target=f"dispatch:{dispatch.id}", after="requested")
    ctx.notify(expert.user.line_user_id, [
        msg.text("支援のご依頼が届きました。"),
        flex.choices_card("支援依頼", describe(ctx, dispatch) + "\n\nお引き受けいただけますか？",
                          [("受諾する", review.action_data("dsp_accept", id=dispatch.id)),
                           ("辞退する", review.action_data("dsp_decline", id=dispatch.id))]),
    ], "dispatch_requested")
    return [msg.text(f"依頼しました（派遣No.{dispatch.id}）。専門家の回答をお知らせします。", ["依頼一覧"])]


REQUEST = Flow(
    "dispatch_request",
    "支援依頼",
    [BusinessStep(), CorporateNumber(), Location(), Prefecture(), Theme(), ExpertStep(), When(), Confirm()],
    [
        # A business known from before (picked, or found by its 法人番号) already has its pin.
        {"trigger": "known", "source": ["business", "corporate_number"], "dest": "theme"},
        # A pin whose address names the prefecture skips the question.
        {"trigger": "next", "source": "location", "dest": "theme"},
        {"trigger": "no_prefecture", "source": "location", "dest": "prefecture"},
    ],
    start_words=["支援依頼", "依頼"],
    keeps_answers=True,  # nothing has a record until 依頼する: the answers live in FlowDraft
)


# --- the expert's answer -------------------------------------------------------------------------------


def _own_request(ctx: Context, fields: dict[str, str]) -> Dispatch | list[Message]:
    dispatch = find_dispatch(fields.get("id"))
    expert = repo.expert_of(ctx.user)
    if dispatch is None or expert is None or dispatch.expert_id != expert.id:  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        ctx.audit("auth.refused", target=f"dispatch:{fields.get('id')}", reason="not the dispatch's expert")
        return [msg.text("この依頼は見つかりませんでした。")]
    if dispatch.status != "requested":
        return _already(dispatch)
    return dispatch


def _already(dispatch: Dispatch) -> list[Message]:
    return [msg.text(f"派遣No.{dispatch.id} はすでに「{DISPATCH_LABELS.get(dispatch.status)}」です。")]


def accept(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _own_request(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    limit = ctx.program.free_dispatches_per_business
    used = counted_dispatches(ctx, dispatch.business_id, DISPATCH_COUNTED, exclude=dispatch.id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    if used >= limit:
        try:
            DISPATCH.move(dispatch, "cancel_over_limit", actor=ctx.user_id, reason="無料派遣の上限", event_id=ctx.event_id,
                          changes={"reason": "無料派遣の上限"})
        except IllegalTransition:  # answered or cancelled meanwhile (the machine audited it)
            return _already(dispatch)
        ctx.audit("dispatch.limit_refused", target=f"dispatch:{dispatch.id}", before=str(used), after=str(limit))
        ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
            f"派遣No.{dispatch.id}（{dispatch.business.name}）は、無料派遣の上限（{limit}回）に達したため取り消されました。")],
            "dispatch_limit")
        return [msg.text("この事業者は無料派遣の上限に達したため、依頼は取り消されました。")]
    try:
        DISPATCH.move(dispatch, "accept", actor=ctx.user_id, event_id=ctx.event_id)
    except IllegalTransition:
        return _already(dispatch)
    ctx.audit("dispatch.accepted", target=f"dispatch:{dispatch.id}", before="requested", after="accepted")
    ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
        f"派遣No.{dispatch.id}（{dispatch.business.name}、{when_text(ctx, dispatch.scheduled_at)}）を"
        f"{expert_name(dispatch.expert)}さんが受諾しました。")], "dispatch_accepted")
    return [msg.text(f"受諾しました。当日は事業所で「チェックイン」をお願いします。\n\n{describe(ctx, dispatch)}")]


def decline(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _own_request(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(DECLINE, s, ctx, state="why", data={"dispatch_id": dispatch.id})


class DeclineReason(Step):
    name = "why"
    title = "辞退の理由"
    help = "依頼した支援機関の担当者に伝わります。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("辞退の理由を入力してください（依頼した担当者に伝わります）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        reason = reason_from(inp, "辞退の理由")
        if isinstance(reason, Invalid):
            return reason
        dispatch = _own_request(ctx, {"id": str(s.data.get("dispatch_id"))})
        if isinstance(dispatch, list):
            return Finish(dispatch)
        try:
            DISPATCH.move(dispatch, "decline", actor=ctx.user_id, reason=reason[:500], event_id=ctx.event_id,
                          changes={"reason": reason[:500]})
        except IllegalTransition:
            return Finish(_already(dispatch))
        ctx.audit("dispatch.declined", target=f"dispatch:{dispatch.id}", before="requested", after="declined",
                  reason=reason[:500])
        ctx.notify(dispatch.requested_by.line_user_id, [msg.text(
            f"派遣No.{dispatch.id}（{dispatch.business.name}）を{expert_name(dispatch.expert)}さんが辞退しました。\n"
            f"理由：{reason[:500]}\n別の専門家に依頼する場合は「支援依頼」と送ってください。")], "dispatch_declined")
        return Finish([msg.text("辞退を担当者に伝えました。")])


DECLINE = Flow("dispatch_decline", "依頼の辞退", [DeclineReason()])


# --- the reviewer's cancel and reschedule (before check-in) -----------------------------------------------


def _manageable(ctx: Context, fields: dict[str, str]) -> Dispatch | list[Message]:
    dispatch = find_dispatch(fields.get("id"))
    if dispatch is None:
        return [msg.text("派遣が見つかりませんでした。")]
    if not reviewer_of(ctx, dispatch):
        ctx.audit("auth.refused", target=f"dispatch:{dispatch.id}", reason="not this institution's reviewer")
        return [msg.text("この派遣を操作する権限がありません。")]
    if dispatch.status not in DISPATCH_BEFORE_CHECK_IN:
        return _unchangeable(dispatch)
    return dispatch


def _unchangeable(dispatch: Dispatch) -> list[Message]:
    return [msg.text(f"派遣No.{dispatch.id} は「{DISPATCH_LABELS.get(dispatch.status)}」のため変更できません"
                     "（チェックイン前の派遣のみ）。")]


def begin_cancel(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _manageable(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(MANAGE, s, ctx, state="cancel_reason", data={"dispatch_id": dispatch.id, "op": "cancel"}, back=[])


def begin_move(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    dispatch = _manageable(ctx, fields)
    if isinstance(dispatch, list):
        return dispatch
    return ENGINE.enter(MANAGE, s, ctx, state="new_when", data={"dispatch_id": dispatch.id, "op": "move"}, back=[])


class CancelReason(ReasonStep):
    name = "cancel_reason"
    title = "取消の理由"
    help = "専門家に伝わります。"
    what = "取消の理由"
    trigger = "confirm"
    leads_to_next = False  # 取消 and 日時変更 are two entries to one confirmation, not a sequence

    def prompt(self, s: Session, ctx: Context) -> str:
        return f"派遣No.{s.data['dispatch_id']} を取り消す理由を入力してください（専門家に伝わります）。"


class NewWhen(Step):
    name = "new_when"
    title = "新しい日時"
    leads_to_next = False  # moves on with ``confirm``
    help = When.help

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(f"派遣No.{s.data['dispatch_id']} の新しい日時を選んでください。", extra=[picker(ctx, "dp=move")])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            chosen = parse_when(inp, ctx)
            check_when(ctx, chosen)
        except ValueError as exc:
            return Invalid(str(exc))
        s.data["when"] = to_utc(chosen).isoformat()
        return Advance(trigger="confirm")


class ManageConfirm(ConfirmStep):
    name = "manage_confirm"
    help = "「はい」で確定し、専門家に伝えます。"

    def describe(self, s: Session, ctx: Context) -> str:
        if s.data["op"] == "cancel":
            return f"派遣No.{s.data['dispatch_id']} を取り消します。"
        return f"派遣No.{s.data['dispatch_id']} の日時を{when_text(ctx, datetime.fromisoformat(s.data['when']))} に変更します。"

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        dispatch = _manageable(ctx, {"id": str(s.data["dispatch_id"])})
        if isinstance(dispatch, list):
            return dispatch
        before = dispatch.status
        old = when_text(ctx, dispatch.scheduled_at)
        try:
            if s.data["op"] == "cancel":
                DISPATCH.move(dispatch, "cancel", actor=ctx.user_id, reason=s.data["reason"], event_id=ctx.event_id,
                              changes={"reason": s.data["reason"]})
            else:
                DISPATCH.move(dispatch, "reschedule", actor=ctx.user_id, event_id=ctx.event_id,
                              changes={"scheduled_at": datetime.fromisoformat(s.data["when"])})
        except IllegalTransition:  # checked in (or cancelled) meanwhile: the machine audited it
            return _unchangeable(dispatch)
        if s.data["op"] == "cancel":
            note = f"派遣No.{dispatch.id}（{dispatch.business.name}）は取り消されました。\n理由：{s.data['reason']}"
        else:
            note = (f"派遣No.{dispatch.id}（{dispatch.business.name}）の日時が変更されました。\n"
                    f"{old} → {when_text(ctx, dispatch.scheduled_at)}")
        ctx.audit(f"dispatch.{s.data['op']}", target=f"dispatch:{dispatch.id}", before=before, after=dispatch.status,
                  reason=s.data.get("reason"))
        ctx.notify(dispatch.expert.user.line_user_id, [msg.text(note)], f"dispatch_{s.data['op']}")
        return [msg.text("専門家に伝えました。\n" + note)]


MANAGE = Flow(
    "dispatch_manage",
    "派遣の取消・日時変更",
    [CancelReason(), NewWhen(), ManageConfirm()],
    [{"trigger": "confirm", "source": ["cancel_reason", "new_when"], "dest": "manage_confirm"}],
)


def upcoming_cards(ctx: Context) -> list[Message]:
    """依頼一覧: the institution's dispatches before check-in, with 取消 / 日時変更 buttons."""
    query = (Dispatch.select().where((Dispatch.institution == ctx.user.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                                     & Dispatch.status.in_(DISPATCH_BEFORE_CHECK_IN))
             .order_by(Dispatch.scheduled_at).limit(4))
    items = list(query)
    if not items:
        return [msg.text("チェックイン前の派遣はありません。新しく依頼する場合は「支援依頼」と送ってください。", ["支援依頼"])]
    cards: list[Message] = [msg.text(f"チェックイン前の派遣（{len(items)}件まで表示）")]
    for d in items:
        cards.append(flex.choices_card(
            f"派遣No.{d.id}（{DISPATCH_LABELS[d.status]}）", describe(ctx, d),
            [("取消", review.action_data("dsp_cancel", id=d.id)), ("日時変更", review.action_data("dsp_move", id=d.id))]))
    return cards


# --- wiring (handlers/router.py FEATURES) --------------------------------------------------------------

FLOWS = [REQUEST, DECLINE, MANAGE]
ACTIONS = {"dsp_accept": accept, "dsp_decline": decline, "dsp_cancel": begin_cancel, "dsp_move": begin_move}


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    if inp.kind != "text" or ctx.user.role not in ("reviewer", "secretariat"):
        return None
    if inp.text in REQUEST.start_words:
        if ctx.user.role != "reviewer":
            return [msg.text("支援依頼は支援機関の担当者が行います。")]
        questions = ENGINE.enter(REQUEST, s, ctx)
        if s.state != REQUEST.initial:
            return [msg.text(f"入力途中の支援依頼（{s.data.get('business_name', '')}）の続きから再開します。"
                             "やり直す場合は「最初から」と送ってください。")] + questions
        return questions
    if inp.text in ("依頼一覧", "派遣一覧") and ctx.user.role == "reviewer":
        return upcoming_cards(ctx)
    return None


def listing(ctx: Context, status: str | None) -> str:
    """``/dispatches [status]`` for the secretariat, plus recent limit refusals."""
    from storage.models import AuditLog

    query = Dispatch.select().order_by(Dispatch.scheduled_at.desc()).limit(20)
    if status:
        query = query.where(Dispatch.status == status)
    lines = [f"No.{d.id} {when_text(ctx, d.scheduled_at)} {d.business.name} / {expert_name(d.expert)}"
             f"（{DISPATCH_LABELS.get(d.status, d.status)}）" for d in query]
    refused = list(AuditLog.select().where(AuditLog.action == "dispatch.limit_refused")
                   .order_by(AuditLog.id.desc()).limit(5))
    text = "派遣一覧" + (f"（{DISPATCH_LABELS.get(status, status)}）" if status else "") + "\n" + ("\n".join(lines) or "該当なし")
    if refused:
        text += "\n\n上限による依頼の拒否（最近5件）\n" + "\n".join(
            f"{to_local(ctx, a.at):%m/%d %H:%M} {a.target}（{a.before}/{a.after}回）" for a in refused)
    return text
