"""The request form (支援依頼): a reviewer asks a commissioned expert to visit a business.

Reads top to bottom like the conversation: 事業者 → 法人番号 → 所在地
(→ 都道府県) → テーマ → 専門家 → 日時 → 確認, then :func:`create_request`
writes the dispatch and sends the expert the card to answer (``answers``).
Which business and which experts fit, the date rules and the free-dispatch
limit live in their own modules (``businesses``, ``candidates``,
``schedule``, ``free_limit``).

The request in progress is kept in SQL after every answer (``FlowDraft``,
``keeps_answers``), so a lost session resumes it; no business or dispatch
is written until 依頼する.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from linebot.v3.messaging import LocationAction, Message, QuickReplyItem

from conversations.dispatch.businesses import (
    MAX_CHOICES,
    business_named,
    corporate_number_problem,
    known_businesses,
    name_problem,
)
from conversations.dispatch.candidates import candidates, prefecture_in
from conversations.dispatch.common import describe
from conversations.dispatch.free_limit import counted_dispatches
from conversations.dispatch.schedule import WHEN_HELP, check_when, parse_when, picker
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import Advance, Finish, Flow, Invalid, Outcome, Step
from conversations.kit.steps import choose, confirmation
from conversations.registration import review
from domain import clock
from domain.names import expert_name
from domain.statuses import DISPATCH, DISPATCH_COUNTED
from domain.validators import parse_prefecture
from storage.models import Business, Dispatch, Expert
from storage.sessions import Session


class BusinessStep(Step):
    name = "business"
    title = "事業者"
    help = "支援する事業者の名称を入力してください。以前に依頼した事業者はボタン（または番号）で選べます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        known = known_businesses(ctx)
        text = "支援する事業者の名称を入力してください。"
        if known:
            text += "\n以前に依頼した事業者は番号でも選べます：\n" + "\n".join(f"{i}. {b.name}" for i, b in enumerate(known, 1))
        return [msg.text(text, [(f"{i}. {b.name}", str(i)) for i, b in enumerate(known, 1)])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind != "text" or not inp.text:
            return Invalid("事業者の名称を文字で入力してください。")
        known = known_businesses(ctx)
        if inp.text.isdigit() and 1 <= int(inp.text) <= len(known):
            business = known[int(inp.text) - 1]
            s.data.update(business_id=business.id, business_name=business.name)
            return Advance([msg.text(f"「{business.name}」（登録済み）で依頼します。")], trigger="known")
        name = inp.text.strip()
        problem = name_problem(name)
        if problem is not None:
            return Invalid(problem)
        existing = business_named(ctx, name)
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
        problem = corporate_number_problem(text)
        if problem is not None:
            return Invalid(problem)
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
            return Advance(trigger="next" if prefecture_in(s.data["address"]) else "no_prefecture")
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


def request_address(s: Session) -> str:
    """Where the business is: the pin's address, or the known business's record."""
    if s.data.get("address"):
        return str(s.data["address"])
    business = Business.get_or_none(Business.id == s.data["business_id"]) if s.data.get("business_id") else None
    return (business.address or "") if business is not None else ""


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
    help = WHEN_HELP

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("訪問日時を選んでください（「12/1 10:00」のように入力もできます）。", extra=[picker(ctx, "dp=when")])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            chosen = parse_when(inp, ctx)
            check_when(ctx, chosen)
        except ValueError as exc:
            return Invalid(str(exc))
        s.data["when"] = clock.to_utc(chosen).isoformat()
        return Advance()


class Confirm(Step):
    name = "confirm"
    title = "依頼内容の確認"
    help = "「依頼する」で専門家に依頼が届きます。直す場合は「戻る」。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        expert = Expert.get_by_id(s.data["expert_id"])
        when = clock.when_text(ctx.program.timezone, datetime.fromisoformat(s.data["when"]))
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
