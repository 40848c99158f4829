"""The request form (支援依頼): a reviewer asks a commissioned expert to visit a business.

Reads top to bottom like the conversation: 事業者 → 法人番号 → 所在地
(a pin, coordinates, or a typed address → 所在地の確認) (→ 都道府県) →
テーマ → 専門家 → 日時 → 確認 (修正 of any item comes back to it), then
:func:`create_request` writes the dispatch and sends the expert the card to
answer (``answers``). Which business and which experts fit, where the
business is, the date rules and the free-dispatch limit live in their own
modules (``businesses``, ``candidates``, ``places``, ``schedule``,
``free_limit``).

The request in progress is kept in SQL after every answer (``FlowDraft``,
``keeps_answers``), so a lost session resumes it; no business or dispatch
is written until 依頼する.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime

from linebot.v3.messaging import (
    FlexBox,
    FlexBubble,
    FlexButton,
    FlexComponent,
    FlexText,
    LocationAction,
    Message,
    QuickReplyItem,
)

from conversations.dispatch import places
from conversations.dispatch.businesses import (
    MAX_CHOICES,
    business_named,
    corporate_number_problem,
    known_businesses,
    name_problem,
)
from conversations.dispatch.candidates import candidates, fitting_count, no_fit_text, search_miss_text
from conversations.dispatch.common import describe
from conversations.dispatch.free_limit import counted_dispatches
from conversations.dispatch.schedule import WHEN_HELP, check_when, parse_when, picker
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import EDIT_FLAG, Advance, Finish, Flow, Invalid, Outcome, Step
from conversations.kit.places import Geocoder
from conversations.kit.steps import NO, YES, choose, confirmation, summary_answer
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


class Location(Step):
    name = "location"
    title = "事業者の所在地"
    help = ("事業所の位置を地図で指定して送ってください（スマートフォンのLINEの「位置情報」）。"
            "チェックインの距離の基準になります。パソコンからは住所（例：東京都大田区蒲田5-13-1）"
            "または「35.6812, 139.7671」のような緯度・経度を入力できます。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(places.QUESTION, extra=[QuickReplyItem(action=LocationAction(label="位置情報を送る"))])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return refit_expert(s, ctx, places.locate(s, inp, ctx))

    def prefetch(self, s: Session, inp: Input, geocoder: Geocoder) -> None:
        places.prefetch(inp, geocoder)


class PlaceStep(Step):
    """The addresses a typed address may mean: one to confirm, or several to pick from.

    A pin, coordinates or another address are still taken here, so the
    reviewer never has to say 「違う」 first to give the place another way."""

    name = "place"
    title = "所在地の確認"
    help = ("入力された住所で見つかった場所です。正しければ「はい」（候補が複数の場合はその候補）を、"
            "違う場合は「違う」（「どれでもない」）を押してください。住所の入力し直しや位置情報の送信もできます。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return places.choices_question(s)

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return refit_expert(s, ctx, places.choose_place(s, inp, ctx))

    def prefetch(self, s: Session, inp: Input, geocoder: Geocoder) -> None:
        places.prefetch_choice(s, inp, geocoder)


class Prefecture(Step):
    """Asked only when the place came without a prefecture (a pin or typed coordinates
    where the address service found nothing or did not answer): experts are offered
    by the prefectures they cover, so the request needs one."""

    name = "prefecture"
    title = "事業者の都道府県"
    help = "事業所のある都道府県を入力してください（例：東京都、大阪）。対応地域の専門家を探すのに使います。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("事業所のある都道府県を入力してください（例：東京都）。対応できる専門家を探すのに使います。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        pref = parse_prefecture(inp.raw_text or "") if inp.kind == "text" else None
        if pref is None:
            return Invalid("都道府県名を入力してください（例：東京都、大阪府、北海道）。")
        # Asked again (戻る): the prefecture given before is replaced, not prefixed twice.
        rest = str(s.data.get("address") or "").removeprefix(str(s.data.get("prefecture") or ""))
        s.data.update(address=f"{pref}{rest}", prefecture=pref)
        return refit_expert(s, ctx, Advance())


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
        return refit_expert(s, ctx, Advance())


def request_business(s: Session) -> Business | None:
    """The institution's business the request is for, when one was picked (it has its own pin)."""
    return Business.get_or_none(Business.id == s.data["business_id"]) if s.data.get("business_id") else None


def request_address(s: Session) -> str:
    """Where the business is: a known business's record (its pin is the truth), else the place given."""
    business = request_business(s)
    if business is not None:
        return business.address or ""
    return str(s.data.get("address") or "")


def request_point(s: Session) -> tuple[float, float] | None:
    """The business's pin, for the map link: the known business's, else the place given."""
    business = request_business(s)
    if business is not None:
        return (business.latitude, business.longitude) if business.latitude is not None else None
    return (float(s.data["lat"]), float(s.data["lng"])) if s.data.get("lat") is not None else None


RECHOOSE_EXPERT = "rechoose_expert"


def refit_expert(s: Session, ctx: Context, outcome: Outcome) -> Outcome:
    """A fix from the summary (修正) of the place or the theme may leave the chosen expert
    outside the new area or field: then the expert is chosen again before the summary,
    so a request never goes to an expert who does not cover it."""
    if not (isinstance(outcome, Advance) and outcome.trigger == "next" and s.data.get(EDIT_FLAG)
            and s.data.get("expert_id") and s.data.get("theme")):
        return outcome
    expert_id = int(s.data["expert_id"])
    fitting = candidates(ctx, s.data["theme"], request_address(s), str(expert_id))
    if any(e.id == expert_id for e in fitting):
        return outcome
    s.data.pop("expert_id", None)
    note = msg.text("選んでいた専門家はこの所在地・テーマに対応していないため、専門家を選び直してください。")
    return Advance([*outcome.messages, note], trigger=RECHOOSE_EXPERT)


class ExpertStep(Step):
    name = "expert"
    title = "専門家"
    help = "テーマと地域に対応できる委嘱済みの専門家から選びます。多い場合は氏名の一部や番号で探せます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        search = s.data.get("search")
        if search:
            found = candidates(ctx, s.data["theme"], request_address(s), search)
            total = len(found)
        else:  # counted once in SQL; the names are read only when the list is short enough to show
            total = fitting_count(s.data["theme"], request_address(s))
            found = candidates(ctx, s.data["theme"], request_address(s)) if 0 < total <= MAX_CHOICES else []
        if not total:
            return [msg.text(no_fit_text(ctx, s.data["theme"], request_address(s)), ["戻る"])]
        if total > MAX_CHOICES:  # counted in SQL: no name is read until the list is short
            return [msg.text(f"対応できる専門家が{total:,}名います。氏名（姓・名・フリガナ）または専門家No.を入力して絞り込んでください。")]
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
        if not found:  # who was found instead, and why they cannot take this request
            return Invalid(search_miss_text(ctx, s.data["theme"], request_address(s), word[:20]))
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


# The summary's items, in the form's order: (label, step to fix it). A known business's
# 法人番号 and 所在地 are its record's: they change by picking another business.
SUMMARY_ITEMS = (("事業者", "business"), ("法人番号", "corporate_number"), ("所在地", "location"),
                 ("テーマ", "theme"), ("専門家", "expert"), ("日時", "when"))
OWN_RECORD_ITEMS = ("corporate_number", "location")


def editable_items(s: Session) -> list[str]:
    known = request_business(s) is not None
    return [step for _, step in SUMMARY_ITEMS if not (known and step in OWN_RECORD_ITEMS)]


def summary_rows(s: Session, ctx: Context) -> list[flex.Row]:
    """(label, value, 修正 postback) per item; a value not given (yet) is 「—」."""
    business = request_business(s)
    expert = Expert.get_or_none(Expert.id == s.data["expert_id"]) if s.data.get("expert_id") else None
    when = s.data.get("when")
    place = request_address(s) or ("地図の位置（住所なし）" if request_point(s) else "")
    values = {
        "business": f"{business.name}（登録済み）" if business is not None else str(s.data.get("business_name") or ""),
        "corporate_number": (business.corporate_number if business is not None else s.data.get("corporate_number"))
        or "なし",
        "location": place,
        "theme": str(s.data.get("theme") or ""),
        "expert": expert_name(expert) if expert is not None else "",
        "when": clock.when_text(ctx.program.timezone, datetime.fromisoformat(when)) if when else "",
    }
    editable = editable_items(s)
    return [(label, flex.shown(values[step]), f"p=edit&s={step}" if step in editable else None)
            for label, step in SUMMARY_ITEMS]


def summary_card(rows: list[flex.Row], point: tuple[float, float] | None, alt: str) -> Message:
    """The registration summary's rows with 修正 (``flex.summary_bubble``), then the pin on
    国土地理院's map (where the check-in distance is measured from), やめる and 依頼する."""
    rows_only = flex.summary_bubble("依頼内容の確認", rows, None).contents
    assert isinstance(rows_only, FlexBubble), "six rows fit one bubble"
    footer: list[FlexComponent] = []
    if point is not None:
        footer.append(FlexButton(action=flex.uri_action("地図で確認（国土地理院）", places.map_url(*point)),
                                 style="link", height="sm"))
    footer += [
        FlexText(text="この内容で依頼しますか？直す項目は「修正」を押してください。", size="xs",
                 color=flex.SUB_GREY, wrap=True),
        FlexBox(layout="horizontal", spacing="sm", contents=[
            FlexButton(action=flex.postback("やめる", NO), style="secondary", height="sm", flex=1),
            FlexButton(action=flex.postback("依頼する", YES), style="primary", color=flex.GREEN, height="sm", flex=1),
        ]),
    ]
    bubble = FlexBubble(header=rows_only.header, body=rows_only.body,
                        footer=FlexBox(layout="vertical", spacing="sm", paddingAll="12px", contents=footer))
    return flex.flex_message(alt, bubble)


class Confirm(Step):
    name = "confirm"
    title = "依頼内容の確認"
    help = ("「依頼する」で専門家に依頼が届きます。直す項目は「修正」を押すと、その質問に戻り、"
            "答えるとこの確認に戻ります（「修正 日時」のように入力しても直せます）。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        rows = summary_rows(s, ctx)
        text = "\n".join(f"{label}：{value}" for label, value, _ in rows) + "\n\nこの内容で依頼しますか？"
        return [summary_card(rows, request_point(s), text)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        answer = confirmation(inp, yes=("依頼する",), no=("やめる",))
        if answer == NO:
            return Finish([msg.text("依頼を取りやめました。")])
        if answer == YES:
            return self._submit(s, ctx)
        return summary_answer(
            s, inp, editable=editable_items(s),
            label_to_step={label: step for label, step in SUMMARY_ITEMS if step in editable_items(s)},
            on_submit=lambda: self._submit(s, ctx), submit_words=("依頼する",),
        ) or Invalid("「依頼する」か「やめる」を押してください。直す項目は「修正」を押してください"
                     "（「修正 日時」のように入力しても直せます）。")

    def _submit(self, s: Session, ctx: Context) -> Outcome:
        missing = [label for label, value, _ in summary_rows(s, ctx) if value == flex.MISSING]
        if request_business(s) is None and request_point(s) is None:
            missing.append("所在地")
        if missing:
            return Invalid("まだ入力されていない項目があります：" + "、".join(dict.fromkeys(missing))
                           + "。「修正」から入力してください。")
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
    [BusinessStep(), CorporateNumber(), Location(), PlaceStep(), Prefecture(), Theme(), ExpertStep(), When(),
     Confirm()],
    [
        # A business known from before (picked, or found by its 法人番号) already has its pin.
        {"trigger": "known", "source": ["business", "corporate_number"], "dest": "theme"},
        # The place: a typed address is confirmed (or picked among candidates) first; a place
        # whose address names the prefecture skips its question (a pin is looked up).
        {"trigger": places.FOUND, "source": ["location", "place"], "dest": "place"},
        {"trigger": places.RETRY, "source": "place", "dest": "location"},
        {"trigger": places.PINNED, "source": ["location", "place"], "dest": "theme"},
        {"trigger": places.NO_PREFECTURE, "source": ["location", "place"], "dest": "prefecture"},
        # The summary: 修正 jumps to an item's question; answering it comes back (engine: EDIT_FLAG),
        # through the expert again when the fixed place or theme leaves the chosen one out.
        {"trigger": RECHOOSE_EXPERT, "source": ["location", "place", "prefecture", "theme"], "dest": "expert"},
        *({"trigger": f"edit_{step}", "source": "confirm", "dest": step} for _, step in SUMMARY_ITEMS),
    ],
    start_words=["支援依頼", "依頼"],
    keeps_answers=True,  # nothing has a record until 依頼する: the answers live in FlowDraft
)
