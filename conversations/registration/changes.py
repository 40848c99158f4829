"""Changes after approval: the same form, re-reviewed by the institution.

The expert edits the working copy (``Expert.draft``) with the profile form
and sends it; the difference against the answers in force
(``Expert.profile``) becomes a ``ChangeRequest`` for the institution's
reviewers. The approved data stays in force until they approve; a bank
change needs a new passbook photo. A request moves pending → approved or
returned through its status machine (``domain.statuses``); a
returned one is fixed and sent as a new request.
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations import present
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.registration import bank, items, review, submission
from conversations.roles import reviewer_ids, secretariat_ids
from domain.names import expert_name
from domain.status_machine import IllegalTransition
from domain.statuses import CHANGE
from storage.models import ChangeRequest, Expert, utcnow

APPROVED_STATUSES = ("registered", "conditions_agreed", "commissioned")
BANK_LABEL = bank.Bank.summary_label  # a bank change needs a new passbook photo
START_WORDS = ("登録内容の変更", "プロフィール変更", "口座変更", "変更")


def pending_change(expert: Expert) -> ChangeRequest | None:
    change: ChangeRequest | None = (
        ChangeRequest.select().where((ChangeRequest.expert == expert) & (ChangeRequest.status == "pending"))
        .order_by(ChangeRequest.id.desc()).first())
    return change


def can_change(expert: Expert | None) -> bool:
    return expert is not None and expert.status in APPROVED_STATUSES and pending_change(expert) is None


def differences(expert: Expert) -> list[list[str]]:
    """[label, in force, proposed] for every summary row that differs."""
    before = {label: value for label, value, _ in items.summary_rows(expert.profile or {})}
    after = items.summary_rows(expert.draft or {})
    return [[label, before.get(label, "—"), value] for label, value, _ in after if before.get(label, "—") != value]


def submit_change(ctx: Context, expert: Expert) -> list[Message] | str:
    """送信 in change mode. Returns replies, or a problem to show before sending."""
    diff = differences(expert)
    if not diff:
        return "変更された項目がありません。直したい項目の「修正」を押してください。"
    bank_changed = any(row[0] == BANK_LABEL for row in diff)
    old_photos = (expert.profile or {}).get("photos") or {}
    new_photos = (expert.draft or {}).get("photos") or {}
    if bank_changed and new_photos.get("passbook") == old_photos.get("passbook"):
        return "口座を変更する場合は、新しい口座の通帳の写真も送ってください（「修正 写真」から送れます）。"
    change = ChangeRequest.create(expert=expert, changed=diff, bank_changed=bank_changed)
    ctx.audit("change.submitted", target=f"change:{change.id}", reason=", ".join(row[0] for row in diff))
    reviewers = reviewer_ids(expert.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    # Without a reviewer at the institution the secretariat decides: the card says why it came to them.
    why = ("登録内容の変更申請が届きました：承認または差し戻しをお願いします" if reviewers else
           "登録内容の変更申請が届きました：支援機関に担当者がいないため事務局で判断してください")
    card = change_card(change, why)
    for to in reviewers or secretariat_ids():
        ctx.notify(to, [card], "change_submitted")
    return [msg.text(
        f"変更申請を送信しました（変更申請No.{change.id}）。\n承認されるまでは、現在の登録内容が有効です。", ["状況"])]


def change_card(change: ChangeRequest, why: str | None = None) -> Message:
    """A change request as its decider sees it: ``why`` (for a push) is the card's first line."""
    expert = change.expert
    rows = [(label, f"{old} → {new}") for label, old, new in change.changed]
    return flex.application_card(
        expert_no=expert.id, name=expert_name(expert), kana=expert.kana or "—",
        institution=expert.institution.name if expert.institution else "—",
        status_label=f"変更申請No.{change.id}", rows=rows, photo_links=[],
        actions=[("承認", review.action_data("chg_approve", id=change.id)),
                 ("差し戻し", review.action_data("chg_return", id=change.id))],
        why=why,
    )


def may_decide(ctx: Context, change: ChangeRequest) -> bool:
    user = ctx.user
    if user.role == "secretariat":
        return True
    return user.role == "reviewer" and user.institution_id is not None and user.institution_id == change.expert.institution_id  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def find(change_id: object) -> ChangeRequest | None:
    try:
        return ChangeRequest.get_or_none(ChangeRequest.id == int(str(change_id)))
    except (TypeError, ValueError):
        return None


def decide(ctx: Context, op: review.Op, change_id: object, reason: str | None) -> list[Message]:
    change = find(change_id)
    if change is None:
        return [msg.text("変更申請が見つかりませんでした。")]
    if not may_decide(ctx, change):
        return review.refuse(ctx, op.key, change.expert_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    if change.status != "pending":
        return present.Present(present.change_line(ctx.program.timezone, change)).messages()
    expert = change.expert
    approve = op.key == "chg_approve"
    decided: dict[str, object] = {"decided_at": utcnow(), "decided_by": ctx.user_id}
    try:
        CHANGE.move(change, "approve" if approve else "return", actor=ctx.user_id, reason=reason, event_id=ctx.event_id,
                    changes=decided if approve else {**decided, "reason": reason})
    except IllegalTransition:  # decided by someone else meanwhile (the machine audited it)
        return present.Present(present.change_line(ctx.program.timezone, find(change.id) or change)).messages()
    labels = "、".join(row[0] for row in change.changed)
    if approve:
        expert.profile = dict(expert.draft or {})
        submission.set_searchable_fields(expert, expert.profile)
        expert.updated_at = utcnow()
        expert.save()
        ctx.notify(expert.user.line_user_id, [msg.text(f"登録内容の変更（{labels}）が承認されました。")], "change_approved")
        for sec in secretariat_ids():
            ctx.notify(sec, [msg.text(f"申請No.{expert.id} の登録内容の変更（{labels}）が承認されました。")], "change_approved")
    else:
        ctx.notify(expert.user.line_user_id, [msg.text(
            f"登録内容の変更（{labels}）が差し戻されました。\n理由：{reason}\n現在の登録内容は引き続き有効です。"
            "「登録内容の変更」と送ると修正して再送信できます。")], "change_returned")
    ctx.audit(f"change.{change.status}", target=f"change:{change.id}", reason=reason)
    return [msg.text(f"変更申請No.{change.id} を{op.verb}しました。")]
