"""An application as others see it, and sending it off (送信).

The expert's summary (with 修正 per item), the card reviewers and the
secretariat get, and the detail view with short-lived photo links all read
the same rows (``items.summary_rows``), so what the expert confirmed is
exactly what is reviewed.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.registration import items, review
from conversations.roles import reviewer_ids, secretariat_ids
from domain import clock, lifecycle
from domain.withdrawal import withdrawal_entry
from storage import repo
from storage.models import Expert


def sharing_the_account(expert: Expert) -> list[int]:
    """Other applications (not rejected) paid into the same bank account, found by the
    keyed blind index: fees of two experts into one account need a look, and no one
    has to decrypt anything to see it."""
    blind = (expert.draft or {}).get("account_blind") or expert.account_blind
    if not blind:
        return []
    return [e.id for e in Expert.select(Expert.id).where((Expert.account_blind == blind) & (Expert.id != expert.id)
                                                         & (Expert.status != "rejected")).order_by(Expert.id)]


# What a reviewer's card carries in the chat: what the decision turns on (qualifications,
# requirements, fields, areas). The name and kana are its header; birth date, phone,
# e-mail, address, bank account and photos stay behind the signed page (詳細), so the
# chat history — on phones, PCs and LINE's servers — holds no more than the decision needs.
DECISION_LABELS = ("保有資格", "登録要件", "専門分野", "対応地域")


def public_rows(expert: Expert) -> list[tuple[str, str]]:
    """What reviewers see of an application in the chat; a shared account comes first.
    The institution is not a row: the card names it."""
    rows = [(label, value) for label, value, _ in items.item_rows(expert.draft or expert.profile or {})
            if label in DECISION_LABELS]
    for what, others in (("振込口座", sharing_the_account(expert)), *sharing_contact(expert)):
        if others:
            numbers = "、".join(f"申請No.{n}" for n in others)
            rows.insert(0, ("要確認", f"同じ{what}が{numbers}でも登録されています"))
    return rows


def sharing_contact(expert: Expert) -> list[tuple[str, list[int]]]:
    """Other applications with the same phone or e-mail, by their blind indexes (nothing decrypted)."""
    answers = expert.draft or expert.profile or {}
    found = []
    for kind, label in (("phone", "電話番号"), ("email", "メールアドレス")):
        value = answers.get(kind)
        others = [n for n in repo.experts_matching(kind, value) if n != expert.id] if value else []
        found.append((label, others))
    return found


def photo_links(ctx: Context, expert: Expert) -> list[tuple[str, str]]:
    """(what, short-lived signed URL) of each photo sent, in the form's order."""
    photos = (expert.draft or {}).get("photos") or {}
    if ctx.link_for is None:
        return []
    return [(photo.what, ctx.link_for(photos[photo.key])) for photo in items.PHOTOS if photo.key in photos]


def photo_images(ctx: Context, answers: dict[str, Any]) -> dict[str, str]:
    """Summary row label → signed URL of its photo, for ``flex.summary_bubble(images=…)``: the
    applicant's summary shows each photo as a small image rather than 「提出済み（39af9d）」."""
    photos = answers.get("photos") or {}
    if ctx.link_for is None:
        return {}
    return {photo.summary_label or photo.what: ctx.link_for(photos[photo.key])
            for photo in items.PHOTOS if photo.key in photos}


def ops_for(role: str | None, expert: Expert) -> list[review.Op]:
    if role == "reviewer" and expert.status == "pending_institution":
        return [review.OPS[k] for k in ("inst_approve", "inst_return", "inst_reject")]
    if role == "secretariat" and expert.status == "pending_secretariat":
        return [review.OPS[k] for k in ("sec_approve", "sec_return", "sec_reject")]
    return []


def full_rows(expert: Expert) -> list[tuple[str, str]]:
    """Every answer of the application, for its signed page (``handlers.application_page``)."""
    return [(label, value) for label, value, _ in items.summary_rows(expert.draft or expert.profile or {})]


# Why a card reached its reader, by (audience, status): its first line (a card read hours later
# explains itself). A caller that knows more (a resubmission) says it instead.
WHY = {
    ("secretariat", "pending_secretariat"): "支援機関が承認しました：事務局の承認待ちです",
    ("reviewer", "pending_institution"): "専門家の登録申請：支援機関の審査待ちです",
}


def cards_for(ctx: Context, expert: Expert, audience: str, why: str | None = None) -> list[Message]:
    """The push a reviewer or the secretariat gets: why it came, what the decision turns on,
    and the decisions still possible.

    Links and images expire quickly and photos stay off the chat history, so the push carries
    none: 詳細 shows the photos, freshly signed.
    """
    why = why or WHY.get((audience, expert.status))
    return [review.application_card(ctx, expert, ops_for(audience, expert), public_rows(expert), [], why=why)]


def detail_messages(ctx: Context, expert: Expert) -> list[Message]:
    """Everything about one application, for someone allowed to see it."""
    if not review.may_view(ctx, expert):
        return review.refuse(ctx, "detail", expert.id)
    ctx.audit("application.viewed", target=f"expert:{expert.id}")
    links = [("申請内容をすべて見る", ctx.page_for(expert.id, ctx.user.id))] if ctx.page_for is not None else []
    card = review.application_card(ctx, expert, ops_for(ctx.user.role, expert), public_rows(expert), links,
                                   photos=photo_links(ctx, expert))  # the photos as small images
    notes = []
    if expert.status_reason and expert.status in ("returned", "rejected"):
        notes.append(f"前回の理由：{expert.status_reason}")
    if not expert.user.following:
        notes.append("LINE：ブロック中（このアカウントをブロックしているため、通知は届きません）")
    entry = withdrawal_entry(expert) if expert.status == "withdrawn" else None
    if entry is not None:
        kept = "会計の記録に必要な氏名・振込口座のみ保管" if expert.profile else "氏名も匿名化済み"
        notes.append(f"退会：{clock.stamp(ctx.program.timezone, entry.at)}（理由：{entry.reason or '—'}）\n"
                     f"個人データは削除済みです（{kept}）。")
    return [card] + ([msg.text("\n".join(notes))] if notes else [])


def set_searchable_fields(expert: Expert, answers: dict[str, Any]) -> None:
    """The columns /find and duplicate checks read, from the answers now in force
    (the application on 送信, the approved data after a change)."""
    expert.family_name, expert.given_name = answers.get("family_name"), answers.get("given_name")
    expert.kana = f"{answers.get('kana_family', '')}　{answers.get('kana_given', '')}".strip()
    expert.account_blind = answers.get("account_blind")


def submit(ctx: Context, expert: Expert) -> list[Message]:
    """送信: freeze the answers into the record, move the status, tell the reviewers."""
    set_searchable_fields(expert, expert.draft or {})
    expert.save()
    _, after = lifecycle.change_status(expert, "submit", actor=ctx.user_id, event_id=ctx.event_id)
    if after == "pending_institution":
        recipients = reviewer_ids(expert.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        for reviewer in recipients:
            ctx.notify(reviewer, [msg.text("新しい専門家登録の申請が届きました。")] + cards_for(ctx, expert, "reviewer"),
                       "pending_institution")
        if not recipients:
            for sec in secretariat_ids():
                assert expert.institution is not None  # pending_institution: the expert chose one
                ctx.notify(sec, [msg.text(
                    f"申請No.{expert.id} が届きましたが、支援機関「{expert.institution.name}」に担当者が登録されていません。"
                    "「/code reviewer」で担当者登録コードを発行してください。")], "no_reviewer")
        where = "支援機関"
    else:
        for sec in secretariat_ids():
            ctx.notify(sec, cards_for(ctx, expert, "secretariat",
                                      why="差し戻した申請が再送信されました：事務局の承認待ちです"),
                       "pending_secretariat")
        where = "事務局"
    return [msg.text(
        f"登録申請を送信しました（申請No.{expert.id}）。\n{where}の審査結果をこのトークでお知らせします。「状況」と送ると進み具合を確認できます。",
        ["状況"],
    )]

