"""From a LINE event to the right conversation.

Order matters and is the product's: follow/unfollow first, then an
institution code (recognised at any step — it often arrives as the first
message, pre-filled from a QR code), then the user's current flow (whose
engine applies the global commands before the step's own parsing), and
finally the at-rest menu.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations import messages as msg
from conversations import profile
from conversations.engine import Context, Engine, Input
from storage import repo
from storage.sessions import Session

ENGINE = Engine([profile.FLOW])

STATUS_LABELS = {
    "draft": "入力中（未送信）",
    "returned": "差し戻し（修正して再送信してください）",
    "pending_institution": "支援機関の審査待ち",
    "pending_secretariat": "事務局の承認待ち",
    "registered": "登録済み（委嘱条件への同意待ち）",
    "conditions_agreed": "委嘱条件に同意済み（就任承諾待ち）",
    "commissioned": "委嘱済み",
    "rejected": "登録不可",
}

GENERAL_HELP = (
    "中小企業119 専門家派遣の公式アカウントです。\n"
    "・専門家の登録：「登録」と送ってください。\n"
    "・現在の状況：「状況」と送ってください。\n"
    "入力の途中では「戻る」「キャンセル」「最初から」「ヘルプ」も使えます。"
)


def to_input(event: dict[str, Any]) -> Input:
    """LINE's event dict → the flow-level ``Input`` (transport details dropped)."""
    base = {"timestamp_ms": int(event.get("timestamp") or 0), "event_id": event.get("webhookEventId")}
    etype = event.get("type")
    if etype == "message":
        message = event.get("message") or {}
        mtype = message.get("type")
        if mtype == "text":
            return Input.from_text(str(message.get("text") or ""), **base)
        if mtype == "location":
            return Input(kind="location", latitude=message.get("latitude"), longitude=message.get("longitude"),
                         address=message.get("address"), **base)
        if mtype == "image":
            return Input(kind="image", message_id=message.get("id"), **base)
        return Input(kind="unsupported", **base)
    if etype == "postback":
        postback = event.get("postback") or {}
        return Input(kind="postback", data=str(postback.get("data") or ""), params=dict(postback.get("params") or {}), **base)
    if etype in ("follow", "unfollow"):
        return Input(kind=etype, **base)
    return Input(kind="unsupported", **base)


def recover(s: Session, ctx: Context) -> None:
    """A lost or stale session: recompute the position from the SQL draft."""
    for flow in ENGINE.flows.values():
        state = flow.resume_state(ctx)
        if state is not None:
            s.reset()
            s.flow, s.state = flow.name, state
            s.stack = flow.order[: flow.order.index(state)]
            return
    s.reset()


def route(s: Session, inp: Input, ctx: Context) -> list[Message]:
    """Answer one input; mutates the session."""
    if inp.kind == "follow":
        return _follow(s, ctx)
    if inp.kind == "text":
        code = profile.parse_institution_code(inp.text)
        if code and not (s.flow == "profile" and s.state == "institution"):
            institution = repo.institution_by_code(code)
            if institution is not None:
                return _institution_code(s, institution, ctx)
    if s.flow:
        replies = ENGINE.run(s, inp, ctx)
        if replies is not None:
            return replies
    return _at_rest(s, inp, ctx)


def _follow(s: Session, ctx: Context) -> list[Message]:
    repo.set_following(ctx.user, True)
    expert = repo.expert_of(ctx.user)
    if s.flow:
        flow = ENGINE.flows[s.flow]
        s.data.pop("_paused", None)
        return [msg.text("おかえりなさい。前回の続きから再開します。")] + flow.steps[s.state].ask(s, ctx, again=True)
    if expert is not None and expert.status not in profile.EDITABLE_STATUSES:
        return [msg.text("おかえりなさい。\n" + _status_text(ctx))]
    return [msg.text("友だち追加ありがとうございます。\n中小企業119 専門家派遣の専門家登録を始めます。")] + ENGINE.begin(profile.FLOW, s, ctx)


def _institution_code(s: Session, institution: Any, ctx: Context) -> list[Message]:
    if not profile.can_edit(ctx):
        return [msg.text("登録申請はすでに送信済みのため、支援機関は変更できません。\n" + _status_text(ctx))]
    profile.FLOW.on_begin(ctx)
    profile.set_institution(ctx, institution)
    ack = msg.text(f"機関コードを確認しました。支援機関「{institution.name}」で受け付けます。")
    if s.flow == "profile" and not s.data.get("_paused"):
        step = profile.FLOW.steps[s.state]
        return [ack] + step.ask(s, ctx, again=True)
    return [ack] + ENGINE.begin(profile.FLOW, s, ctx)


def _at_rest(s: Session, inp: Input, ctx: Context) -> list[Message]:
    if inp.kind == "text" and inp.text in profile.FLOW.start_words:
        if not profile.can_edit(ctx):
            return [msg.text("登録申請はすでに送信済みです。\n" + _status_text(ctx))]
        return ENGINE.begin(profile.FLOW, s, ctx)
    command = inp.command()
    if command == "status":
        return [msg.text(_status_text(ctx), ["登録", "ヘルプ"])]
    if command == "resume":
        return [msg.text("再開できる入力はありません。", ["登録", "状況", "ヘルプ"])]
    if inp.kind == "unsupported":
        return [msg.text("申し訳ありません。このメッセージの種類には対応していません。文字で送ってください。", ["登録", "状況", "ヘルプ"])]
    return [msg.text(GENERAL_HELP, ["登録", "状況", "ヘルプ"])]


def _status_text(ctx: Context) -> str:
    expert = repo.expert_of(ctx.user)
    if expert is None:
        return "まだ専門家登録をしていません。「登録」と送ると始められます。"
    return f"登録状況：{STATUS_LABELS.get(expert.status, expert.status)}"
