"""From a LINE event to the right conversation.

Order matters and is the product's:
1. follow / unfollow;
2. codes, recognised whatever the user is doing: an institution code (it
   often arrives as the first message, pre-filled from a QR code) and the
   one-time codes that grant a role;
3. admin commands (`/…`) and button actions (`a=…` postbacks) — they win
   over any flow in progress, because reviewers tap cards long after they
   arrived;
4. the user's current flow (its engine applies the global commands before
   the step's own parsing); a sticker or a file in a flow is thanked and the
   question asked again, never counted as a wrong answer;
5. at rest: the features' words, then the menu words, then a button of an old
   message (answered with where its thing stands now), then a plain wish
   (「チェックインしたい」, ``conversations.intents``), then a reminder of a flow
   set aside (続きから), and last the menu, which depends on who the user is.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import structlog
from linebot.v3.messaging import Message

from conversations import intents, present, roles
from conversations.commission import acceptance as commission
from conversations.dispatch import attendance
from conversations.dispatch import feature as dispatch
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE as ENGINE  # re-exported: commands takes it from here, flows registered
from conversations.kit.engine import fit_five
from conversations.kit.flow import PAUSED, Flow
from conversations.kit.steps import NO, YES
from conversations.registration import changes, decision, items, review, submission
from conversations.registration import form as profile
from conversations.reports import feature as reports
from conversations.rights import feature as rights
from conversations.secretariat import admin
from domain import lifecycle
from storage import repo
from storage.models import ChangeRequest, Dispatch, Expert, Report
from storage.sessions import Session

log = structlog.get_logger("router")

# Features added after registration plug in here. Each module exposes
# ``FLOWS`` (its Flow objects), ``ACTIONS`` (postback action → handler) and
# ``at_rest(s, inp, ctx)`` (its keywords when no flow is active, or None).
# ``rights`` comes first: a withdrawn expert is told so whatever they type.
FEATURES: list[Any] = [rights, dispatch, attendance, reports]

ENGINE.register([profile.FLOW, decision.DECISION, commission.REFUSAL, commission.ACCEPTANCE,
                 *(flow for feature in FEATURES for flow in feature.FLOWS)])

GENERAL_HELP = (
    "中小企業119 専門家派遣の公式アカウントです。\n"
    "・専門家の登録：「登録」と送ってください。\n"
    "・現在の状況：「状況」と送ってください。\n"
    "・登録されている個人データの確認：「登録内容」と送ってください。\n"
    "・退会（個人データの削除）：「退会」と送ってください。\n"
    "入力の途中では「戻る」「キャンセル」「最初から」「ヘルプ」も使えます。"
)
REVIEWER_HELP = (
    "支援機関担当者メニュー\n"
    "・「審査待ち」：審査待ちの申請一覧\n"
    "・申請のカードの「詳細」「承認」「差し戻し」「却下」ボタンで審査します。\n"
    "・専門家から退会の申し出を受けたときは、事務局にお伝えください（事務局が手続きします）。"
)


# A timestamp (ms) from before 1970, or so late that a datetime cannot hold it in
# every time zone (9999-01-01), is unknown: the event counts as sent when processed.
_LAST_TIMESTAMP_MS = 253_370_764_800_000


def to_input(event: dict[str, Any]) -> Input:
    """LINE's event dict → the flow-level ``Input`` (transport details dropped).

    Safe for any event ``handlers.event_schema`` accepts: the schema guarantees the
    types; values of the right type that the flows cannot use (a timestamp past
    year 9999, a latitude of 1e300) arrive as "absent"."""
    timestamp = event.get("timestamp")
    known = type(timestamp) is int and 0 < timestamp < _LAST_TIMESTAMP_MS
    base: dict[str, Any] = {"timestamp_ms": timestamp if known else 0, "event_id": event.get("webhookEventId")}
    etype = event.get("type")
    if etype == "message":
        message = event.get("message") or {}
        mtype = message.get("type")
        if mtype == "text":
            return Input.from_text(str(message.get("text") or ""), **base)
        if mtype == "location":
            latitude, longitude = _degrees(message.get("latitude"), 90), _degrees(message.get("longitude"), 180)
            if latitude is None or longitude is None:
                latitude = longitude = None  # the flows ask for the location again
            return Input(kind="location", latitude=latitude, longitude=longitude, address=message.get("address"),
                         **base)
        if mtype == "image":
            image_set = message.get("imageSet") if isinstance(message.get("imageSet"), dict) else None
            return Input(kind="image", message_id=message.get("id"), image_set=image_set, **base)
        if mtype in present.MEDIA_KINDS:
            return Input(kind=mtype, message_id=message.get("id"), **base)
        return Input(kind="unsupported", **base)
    if etype == "postback":
        postback = event.get("postback") or {}
        return Input(kind="postback", data=str(postback.get("data") or ""), params=dict(postback.get("params") or {}), **base)
    if etype in ("follow", "unfollow"):
        return Input(kind=etype, **base)
    return Input(kind="unsupported", **base)


def _degrees(value: Any, limit: float) -> float | None:
    """A latitude (limit 90) or longitude (180) the geodesic code accepts, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -limit <= value <= limit:
        return float(value)
    return None


def recover(s: Session, ctx: Context) -> None:
    """A lost or stale session: recompute the position from the SQL draft."""
    ENGINE.recover(s, ctx)


def route(s: Session, inp: Input, ctx: Context) -> list[Message]:
    """Answer one input; mutates the session."""
    if s.flow and rights.closed(ctx):
        s.reset()  # withdrawn (by the secretariat, meanwhile): none of the expert's flows goes on
    if inp.kind == "follow":
        return _follow(s, ctx)
    if inp.kind == "text":
        replies = _codes(s, inp, ctx)
        if replies is not None:
            return replies
        if admin.is_command(inp.text):
            return admin.handle(s, ctx, inp.text, inp.raw_text)
    if inp.kind == "postback":
        action, fields = review.parse_action(inp.data)
        handler = ACTIONS.get(action)
        if handler is not None:
            return handler(s, ctx, fields)
    if s.flow and inp.kind == "text" and rights.overrides_flow(s, inp):
        ENGINE.set_aside(s, ctx)  # 「退会」 typed at 住所 is a request, never the address
        return _at_rest(s, inp, ctx)
    if s.flow and inp.kind in present.MEDIA_KINDS:
        replies = _media_in_flow(s, inp, ctx)
        if replies is not None:
            return replies
    if s.flow:
        replies = ENGINE.run(s, inp, ctx)
        if replies is not None:
            return replies
    return _at_rest(s, inp, ctx)


# --- 0. late events -------------------------------------------------------------------------


def carries_target(inp: Input) -> bool:
    """A card's button (承認 of application 12…) names what it acts on, so it is judged by
    that target whenever it arrives; a plain answer only means something for the question
    it was sent to."""
    return inp.kind == "postback" and review.parse_action(inp.data)[0] in ACTIONS


def late(s: Session, inp: Input, ctx: Context) -> list[Message]:
    """An input that reached us after a later message of the same user was applied.

    Taking it as the answer to the question asked *now* could put a フリガナ
    where the 氏名 belongs, so it is not applied: the user is told plainly and,
    in a flow, asked the current question again. A follow or block arriving
    late changes nothing and says nothing.
    """
    if inp.kind in ("follow", "unfollow"):
        return []
    what = {"text": f"「{inp.text[:20]}{'…' if len(inp.text) > 20 else ''}」", "location": "位置情報",
            "image": "写真", "postback": "ボタンの操作", **present.MEDIA_NAMES}.get(inp.kind, "メッセージ")
    head = f"{what}は、そのあとに送られたメッセージより遅れて届いたため、入力として使いませんでした。"
    flow = ENGINE.flow_of(s)
    if flow is not None and s.state in flow.steps and not s.data.get(PAUSED):
        return fit_five([msg.text(head + "\n今の質問にもう一度お答えください。")]
                        + flow.steps[s.state].ask(s, ctx, again=True))
    return [msg.text(head + "\n必要でしたら、もう一度送ってください。")]


# --- 1. follow ----------------------------------------------------------------------------


def _follow(s: Session, ctx: Context) -> list[Message]:
    repo.set_following(ctx.user, True)
    expert = repo.expert_of(ctx.user)
    if s.flow:
        flow = ENGINE.flows[s.flow]
        s.data.pop(PAUSED, None)
        assert s.state is not None, "session without a state"
        return [msg.text("おかえりなさい。前回の続きから再開します。")] + flow.steps[s.state].ask(s, ctx, again=True)
    if ctx.user.role in ("reviewer", "secretariat"):
        return [msg.text("おかえりなさい。\n" + (REVIEWER_HELP if ctx.user.role == "reviewer" else "「/help」でコマンドを確認できます。"))]
    if expert is not None and expert.status not in profile.EDITABLE_STATUSES:
        return [_status("おかえりなさい。\n", ctx)]
    return [msg.text("友だち追加ありがとうございます。\n中小企業119 専門家派遣の専門家登録を始めます。")] + ENGINE.enter(profile.FLOW, s, ctx)


# --- 2. codes ------------------------------------------------------------------------------


def _codes(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    code = profile.parse_institution_code(inp.text)
    if code and not (s.flow == "profile" and s.state == "institution"):
        institution = repo.institution_by_code(code)
        if institution is not None:
            return _institution_code(s, institution, ctx)
    one_time = roles.parse_code_message(inp.text)
    if one_time:
        replies = roles.redeem(ctx, one_time)
        if replies is not None:
            return replies
        if inp.text.startswith(("担当者登録", "事務局登録")):
            ctx.audit("code.refused", reason="unknown")
            return [msg.text("このコードは見つかりませんでした。発行された10桁のコードをご確認ください。")]
    if inp.text in ("担当者登録", "事務局登録"):
        return [msg.text(f"{inp.text}のコード（英数字10桁）を続けて送ってください（例：{inp.text} ABCD234567）。")]
    return None


def _institution_code(s: Session, institution: Any, ctx: Context) -> list[Message]:
    if rights.closed(ctx):
        rights.reopen(ctx)  # a withdrawn expert scanning a code again: a new application
    if not profile.can_edit(ctx):
        return [_status("登録申請はすでに送信済みのため、支援機関は変更できません。\n", ctx)]
    profile.FLOW.on_begin(ctx)
    profile.set_institution(ctx, institution)
    ack = msg.text(f"機関コードを確認しました。支援機関「{institution.name}」で受け付けます。")
    if s.flow == "profile" and not s.data.get(PAUSED):
        assert s.state is not None, "session without a state"
        step = profile.FLOW.steps[s.state]
        return [ack] + step.ask(s, ctx, again=True)
    return [ack] + ENGINE.enter(profile.FLOW, s, ctx)


# --- 3. button actions ----------------------------------------------------------------------


def _detail(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    expert = review.find_expert(fields.get("id"))
    if expert is None:
        return [msg.text("申請が見つかりませんでした。")]
    return submission.detail_messages(ctx, expert)


def _decision(key: str) -> Callable[[Session, Context, dict[str, str]], list[Message]]:
    op = review.OPS[key]

    def handler(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
        if key in review.CHANGE_OPS:
            change = changes.find(fields.get("id"))
            if change is None:
                return [msg.text("変更申請が見つかりませんでした。")]
            if not changes.may_decide(ctx, change):
                return review.refuse(ctx, op.key, change.expert_id)  # type: ignore[attr-defined]  # peewee adds FK <name>_id accessors at runtime
            return decision.begin_decision(s, ctx, op, change.id)
        expert = review.find_expert(fields.get("id"))
        if expert is None:
            return [msg.text("申請が見つかりませんでした。")]
        if not review.may_act(ctx, op, expert):
            return review.refuse(ctx, op.key, expert.id)
        return decision.begin_decision(s, ctx, op, expert.id)

    return handler


def _consent(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    return commission.answer_consent(s, ctx, fields.get("ans") == "yes", fields.get("v"))


def _accept(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    return commission.begin_acceptance(s, ctx)


ACTIONS: dict[str, Callable[[Session, Context, dict[str, str]], list[Message]]] = {
    "detail": _detail,
    **{key: _decision(key) for key in review.OPS if key != "revoke"},
    "consent": _consent,
    "accept": _accept,
    **{name: handler for feature in FEATURES for name, handler in feature.ACTIONS.items()},
}


# --- 5. at rest -------------------------------------------------------------------------------


def _at_rest(s: Session, inp: Input, ctx: Context, wishes: bool = True) -> list[Message]:
    for feature in FEATURES:
        replies: list[Message] | None = feature.at_rest(s, inp, ctx)
        if replies is not None:
            return replies
    text = inp.text if inp.kind == "text" else ""
    expert = repo.expert_of(ctx.user)
    if ctx.user.role == "reviewer" and text in ("審査待ち", "審査", "申請一覧"):
        return _reviewer_queue(ctx)
    if text in changes.START_WORDS and expert is not None and expert.status in changes.APPROVED_STATUSES:
        if not changes.can_change(expert):
            return [msg.text("変更申請の審査中です。結果が届くまでお待ちください。")]
        return [msg.text("登録内容の変更です。直したい項目の「修正」を押し、最後に「送信」してください。\n"
                         "支援機関の承認までは、現在の登録内容が有効です。")] + ENGINE.enter(profile.FLOW, s, ctx, state="confirm")
    if text in profile.FLOW.start_words:
        if not profile.can_edit(ctx):
            return [_status("登録申請はすでに送信済みです。\n", ctx)]
        return ENGINE.enter(profile.FLOW, s, ctx)
    if expert is not None and commission.needs_consent(ctx, expert):
        if text in commission.CONSENT_WORDS:
            return commission.conditions_messages(ctx)
        if text in ("同意する", "同意しない"):
            return commission.answer_consent(s, ctx, text == "同意する", None)
    if expert is not None and expert.status == "conditions_agreed" and text in ("就任承諾", "承諾"):
        return commission.begin_acceptance(s, ctx)
    if expert is not None and expert.status in ("conditions_agreed", "commissioned") and text == "委嘱状":
        return commission.letter_messages(ctx, expert)
    command = inp.command()
    if command == "status":
        return [_status("", ctx)]
    kept = _kept_flow(s, ctx)
    if command == "resume":
        if kept is not None:  # a flow whose answers SQL kept (the session moved on, or was lost)
            return [msg.text(f"入力途中の「{kept[0].title}」を再開します。")] + ENGINE.enter(kept[0], s, ctx)
        return [msg.text("再開できる入力はありません。", present.menu_choices(ctx.user))]
    if command == "cancel" and kept is not None:
        return [msg.text(f"入力途中の「{kept[0].title}」は、入力済みの内容を保存したまま一時停止しています。\n"
                         "再開するときは「続きから」と送ってください。", ["続きから", *present.menu_choices(ctx.user)][:4])]
    if inp.kind == "postback" and command is None:
        return _old_button(s, inp, ctx, kept)
    if wishes and inp.kind == "text" and command is None:
        understood = intents.understand(text, intents.audience(ctx.user.role, expert.status if expert else None))
        if understood is not None:
            return _wish(s, inp, ctx, understood)
    if kept is not None and command is None:
        return _reminder(inp, kept)
    if ctx.user.role == "reviewer":
        return [msg.text(REVIEWER_HELP, ["審査待ち"])]
    if ctx.user.role == "secretariat":
        return [msg.text("事務局メンバーとして登録されています。「/help」でコマンドを確認できます。", ["/help", "/pending"])]
    if inp.kind in present.MEDIA_KINDS:
        return [msg.text(present.media_at_rest(inp.kind), present.menu_choices(ctx.user))]
    if inp.kind == "unsupported":
        return [msg.text("申し訳ありません。このメッセージの種類には対応していません。文字で送ってください。", ["登録", "状況", "ヘルプ"])]
    return [msg.text(GENERAL_HELP, ["登録", "状況", "ヘルプ"])]


# --- 5a. a flow set aside ----------------------------------------------------------------------


def _kept_flow(s: Session, ctx: Context) -> tuple[Flow, str] | None:
    """A flow the user left mid-way with answers kept: paused in the session (キャンセル, 「退会」
    typed in a form), or, with the session gone or moved on to another flow, kept in SQL (the
    profile draft, a 支援依頼 being typed, a report being written) past its first question."""
    flow = ENGINE.flow_of(s)
    if flow is not None and s.data.get(PAUSED) and s.state in flow.steps:
        return flow, s.state
    if s.flow:
        return None
    for candidate in ENGINE.flows.values():
        state = candidate.resume_state(ctx)
        if state is not None and state != candidate.initial and state in candidate.steps:
            return candidate, state
    return None


def _reminder(inp: Input, kept: tuple[Flow, str]) -> list[Message]:
    """「こんにちは」 (or anything nobody claims) while a flow waits: remind of it, offer 続きから."""
    return [present.reminder(kept[0].title, kept[0].steps[kept[1]].title, sticker=inp.kind == "sticker")]


# --- 5b. buttons of old messages ---------------------------------------------------------------


def _old_button(s: Session, inp: Input, ctx: Context, kept: tuple[Flow, str] | None) -> list[Message]:
    """A button no flow owns any more: a summary's 修正/送信 is answered with where the application
    (or report) stands now; a confirmation's はい/いいえ says it is over; a flow set aside is recalled."""
    fields = {k: v[0] for k, v in parse_qs(inp.data).items()}
    if fields.get("p") in ("submit", "edit") and ctx.user.role not in ("reviewer", "secretariat"):
        replies = _old_summary(s, ctx, fields)
        if replies is not None:
            return replies
    if kept is not None:
        return [msg.text("入力が一時停止中のため、このボタンは使えません。")] + _reminder(inp, kept)
    if inp.data in (YES, NO):
        return [msg.text("この確認はすでに終わっています（確定済みか、取りやめ済みです）。", present.menu_choices(ctx.user))]
    return [msg.text("このボタンの操作はすでに終わっています。", present.menu_choices(ctx.user))]


def _old_summary(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message] | None:
    """修正 / 送信 on a summary already sent: the application's or the report's present status.

    Both summaries send ``p=submit``; 修正 names its question (``s=``), and 送信 is taken
    for the last thing this expert sent (application, change or report)."""
    expert = repo.expert_of(ctx.user)
    if expert is None:
        return None
    tz = ctx.program.timezone
    step = fields.get("s")
    report = (Report.select().join(Dispatch).where((Dispatch.expert == expert.id) & Report.submitted_at.is_null(False))
              .order_by(Report.submitted_at.desc()).first())
    change = ChangeRequest.select().where(ChangeRequest.expert == expert).order_by(ChangeRequest.id.desc()).first()
    sent = [t for t in (expert.submitted_at, change.created_at if change else None) if t]
    application_at = max(sent) if sent else None
    is_report = step not in items.EDITABLE if step else (
        report is not None and (application_at is None or report.submitted_at >= application_at))
    if is_report:
        return present.report_for_expert(tz, report).messages() if report is not None else None
    if expert.status in profile.EDITABLE_STATUSES:
        return [msg.text("入力途中の申請の続きです。")] + ENGINE.enter(profile.FLOW, s, ctx)
    pending = changes.pending_change(expert)
    if pending is not None:
        return present.Present(present.change_line(tz, pending), "審査結果をお待ちください。", ["状況"]).messages()
    return present.for_the_expert(tz, expert).messages()


# --- 5c. plain wishes -------------------------------------------------------------------------


def _wish(s: Session, inp: Input, ctx: Context, understood: intents.Understood) -> list[Message]:
    """Run the word a wish stands for, as if it had been tapped on the rich menu; or say who can."""
    log.info("intent.understood", wish=understood.wish, target=understood.target or "refused")  # for ops: which wishes
    if understood.target is None:
        return [msg.text(understood.refusal, present.menu_choices(ctx.user))]
    if admin.is_command(understood.target):
        return admin.handle(s, ctx, understood.target, understood.target)
    word = Input.from_text(understood.target, timestamp_ms=inp.timestamp_ms, event_id=inp.event_id)
    return _at_rest(s, word, ctx, wishes=False)


# --- 5d. stickers and files -------------------------------------------------------------------


def _media_in_flow(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    """A sticker or a file in the middle of a question: say what the question needs and ask it
    again — not a wrong answer (no retry counted), nothing given is lost."""
    flow = ENGINE.flow_of(s)
    if flow is None or s.state not in flow.steps or s.data.get(PAUSED):
        return None
    step = flow.steps[s.state]
    return fit_five([msg.text(present.media_note(inp.kind, step))] + step.ask(s, ctx, again=True))


REVIEW_CARDS = 4  # a reply holds 5 messages: the count, then the cards


def _reviewer_queue(ctx: Context) -> list[Message]:
    """審査待ち: the oldest applications first (first come, first reviewed)."""
    query = Expert.select().where((Expert.status == "pending_institution")
                                  & (Expert.institution == ctx.user.institution_id))  # type: ignore[attr-defined]  # peewee FK <name>_id accessor
    total = query.count()
    if not total:
        return [msg.text("審査待ちの申請はありません。")]
    oldest = list(query.order_by(Expert.submitted_at, Expert.id).limit(REVIEW_CARDS))
    more = f"（古い順に{REVIEW_CARDS}件を表示。審査すると次の申請が表示されます）" if total > REVIEW_CARDS else ""
    head = msg.text(f"審査待ちの申請：{total}件{more}")
    return [head] + [card for e in oldest for card in submission.cards_for(ctx, e, "reviewer")]


def _status(prefix: str, ctx: Context) -> Message:
    """Where the user stands, with the next thing to do as a button (the applicant's
    rich menu has no 委嘱条件 or 就任承諾 tile: those are one-time steps)."""
    expert = repo.expert_of(ctx.user)
    next_steps: list[str] = []
    if expert is not None and commission.needs_consent(ctx, expert):
        next_steps.append("委嘱条件")
    elif expert is not None and expert.status == "conditions_agreed":
        next_steps += ["委嘱状", "就任承諾"]
    elif expert is not None and expert.status in ("returned", "withdrawn"):
        next_steps.append("登録")
    return msg.text(prefix + _status_text(ctx), next_steps)


def _status_text(ctx: Context) -> str:
    if ctx.user.role == "reviewer" and ctx.user.institution is not None:
        n = Expert.select().where((Expert.status == "pending_institution") & (Expert.institution == ctx.user.institution_id)).count()  # type: ignore[attr-defined]  # peewee FK <name>_id accessor
        return f"「{ctx.user.institution.name}」の担当者です。審査待ち：{n}件"
    expert = repo.expert_of(ctx.user)
    if expert is None:
        return "まだ専門家登録をしていません。「登録」と送ると始められます。"
    if expert.status == "withdrawn":
        return rights.withdrawn_text(ctx, expert)
    line = f"登録状況：{lifecycle.LABELS.get(expert.status, expert.status)}"
    if expert.status == "returned" and expert.status_reason:
        line += f"\n差し戻しの理由：{expert.status_reason}\n「登録」と送ると修正できます。"
    if commission.needs_consent(ctx, expert):
        line += "\n委嘱条件への同意が必要です。「委嘱条件」と送ってください。"
    if expert.status == "conditions_agreed":
        line += "\n委嘱状をご確認のうえ、「就任承諾」と送ってください。"
    return line
