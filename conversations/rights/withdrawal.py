"""退会 (withdrawal) in LINE: the expert's own, confirmed first, and the secretariat's ``/withdraw``.

Both end in :func:`withdraw`, so a request made in LINE and one received by
mail or phone have the same effects: the lifecycle move to ``withdrawn``
(audited like every move, with its reason); the expert's requested or
accepted dispatches cancelled through the dispatch machine, with a reason,
and their reviewers told; the personal data erased except what the
accounts keep (``domain.withdrawal``); the rich menu relinked (a user with
no role sees the default one). Before anything happens, whoever confirms
reads exactly what will be erased, what is kept and for how long: a
withdrawal cannot be undone.
"""
from __future__ import annotations

from dataclasses import dataclass

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Flow
from conversations.kit.steps import ConfirmStep
from conversations.registration.review import find_expert
from conversations.roles import relink_menu, reviewer_ids, secretariat_ids
from domain import clock, lifecycle
from domain.names import expert_name
from domain.status_machine import IllegalTransition
from domain.statuses import DISPATCH
from domain.withdrawal import (
    Erased,
    close_changes,
    dispatches_in_progress,
    erase,
    has_records,
    pending_dispatches,
    unsent_reports,
    withdrawal_entry,
)
from storage import repo
from storage.models import Expert
from storage.sessions import Session

OWN_REASON = "本人の申し出（LINE）"
CANCEL_REASON = "専門家の退会のため"
ERASED_ALWAYS = "電話番号・メールアドレス・生年月日・住所・保有資格・登録要件・専門分野・対応地域・提出した写真"
ACCOUNTING = "氏名・フリガナ・振込口座"
AGAIN = "再び専門家として登録する場合は「登録」と送ってください（新しい申請として最初から入力します）。"


@dataclass(frozen=True)
class Withdrawn:
    """What one withdrawal did, for the replies and notices."""

    name: str  # as it was before the erasure
    erased: Erased
    cancelled: list[int]  # dispatch numbers
    in_progress: list[int]  # checked in: not cancellable, left as they are


def _numbers(ids: list[int]) -> str:
    return "、".join(f"派遣No.{n}" for n in ids)


def plan(ctx: Context, expert: Expert) -> str:
    """What 退会 will do, said before it is confirmed."""
    years = ctx.program.retention.records_years
    lines = ["退会すると、次の個人データを削除します。", f"・{ERASED_ALWAYS}"]
    if has_records(expert):
        lines += [f"次の記録は会計のため、退会後も{years}年間、暗号化して保管します。",
                  "・謝金・全銀（振込）データ・完了した派遣の報告書", f"・その支払いと記録に必要な{ACCOUNTING}"]
    else:
        lines.append(f"・{ACCOUNTING}")
    lines.append("手続きの履歴と同意の記録（日時と内容）は残ります。削除した情報は元に戻せません。")
    pending = [d.id for d in pending_dispatches(expert)]
    if pending:
        lines.append(f"受諾待ち・受諾済みの派遣（{_numbers(pending)}）は取り消し、支援機関に伝えます。")
    unsent = unsent_reports(expert)
    if unsent:
        lines.append(f"未提出の報告書（{_numbers(unsent)}）は、退会後は提出できません。")
    busy = [d.id for d in dispatches_in_progress(expert)]
    if busy:
        lines.append(f"支援中の派遣（{_numbers(busy)}）は取り消せないため、そのまま残ります。")
    return "\n".join(lines)


def outcome(ctx: Context, done: Withdrawn) -> str:
    """What was erased and what is kept, said once it is done."""
    years = ctx.program.retention.records_years
    if done.erased.kept_records:
        erased = ERASED_ALWAYS
        kept = (f"謝金・全銀（振込）データ・完了した派遣の報告書と、そのための{ACCOUNTING}"
                f"（会計のため{years}年間、暗号化して保管）、手続きの履歴と同意の記録")
    else:
        erased, kept = f"{ERASED_ALWAYS}・{ACCOUNTING}", "手続きの履歴と同意の記録のみ"
    text = f"削除した情報：{erased}\n保管する情報：{kept}"
    if done.cancelled:
        text += f"\n取り消した派遣：{_numbers(done.cancelled)}"
    if done.in_progress:
        text += f"\n支援中のまま残る派遣：{_numbers(done.in_progress)}"
    return text


def withdraw(ctx: Context, expert: Expert, reason: str) -> Withdrawn:
    """Apply 退会 (raises IllegalTransition when the expert has withdrawn meanwhile)."""
    name = expert_name(expert)
    lifecycle.change_status(expert, "withdraw", actor=ctx.user_id, reason=reason, event_id=ctx.event_id)
    cancelled = []
    for dispatch in pending_dispatches(expert):
        before = dispatch.status
        try:
            DISPATCH.move(dispatch, "cancel", actor=ctx.user_id, reason=CANCEL_REASON, event_id=ctx.event_id,
                          changes={"reason": CANCEL_REASON})
        except IllegalTransition:  # answered or cancelled meanwhile (the machine audited it)
            continue
        ctx.audit("dispatch.cancel", target=f"dispatch:{dispatch.id}", before=before, after=dispatch.status,
                  reason=CANCEL_REASON)
        when = clock.when_text(ctx.program.timezone, dispatch.scheduled_at)
        notice = msg.text(f"派遣No.{dispatch.id}（{dispatch.business.name}・{when}）は、"
                          f"専門家（{name}さん）の退会により取り消されました。")
        for to in reviewer_ids(dispatch.institution_id) or secretariat_ids():  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
            ctx.notify(to, [notice], "dispatch_cancel")
        cancelled.append(dispatch.id)
    in_progress = [d.id for d in dispatches_in_progress(expert)]
    close_changes(expert, ctx.user_id, ctx.event_id)
    erased = erase(expert, ctx.files)
    ctx.audit("data.erased", target=f"expert:{expert.id}", after="records_kept" if erased.kept_records else "anonymised",
              reason=reason)
    relink_menu(ctx, expert.user.line_user_id)
    return Withdrawn(name=name, erased=erased, cancelled=cancelled, in_progress=in_progress)


def _busy(expert: Expert) -> list[Message] | None:
    """The expert is at a business now: check out first (the check-out is what the fee is paid on)."""
    busy = [d.id for d in dispatches_in_progress(expert)]
    if not busy:
        return None
    return [msg.text(f"支援中の派遣（{_numbers(busy)}）があります。チェックアウトしてから、改めて「退会」と送ってください。",
                     ["チェックアウト"])]


def already_withdrawn(ctx: Context, expert: Expert) -> str:
    entry = withdrawal_entry(expert)
    return "退会済みです" + (f"（{clock.stamp(ctx.program.timezone, entry.at)}）" if entry else "") + "。"


# --- the expert's own 退会 ---------------------------------------------------------------------


class OwnConfirm(ConfirmStep):
    help = "「はい」で退会し、個人データを削除します（元に戻せません）。「いいえ」で取りやめます。"

    def describe(self, s: Session, ctx: Context) -> str:
        expert = repo.expert_of(ctx.user)
        return plan(ctx, expert) if expert is not None else "専門家登録の情報はありません。"

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        expert = repo.expert_of(ctx.user)
        if expert is None:
            return [msg.text("専門家登録の情報がないため、退会の手続きはありません。")]
        busy = _busy(expert)
        if busy is not None:
            return busy
        try:
            done = withdraw(ctx, expert, OWN_REASON)
        except IllegalTransition:
            return [msg.text(already_withdrawn(ctx, expert))]
        return [msg.text(f"退会の手続きが完了しました。これまでありがとうございました。\n\n{outcome(ctx, done)}\n\n{AGAIN}",
                         ["登録内容"])]


OWN = Flow("withdrawal", "退会", [OwnConfirm()])


def begin_own(s: Session, ctx: Context, expert: Expert | None) -> list[Message]:
    """「退会」: what will be erased and kept, then はい / いいえ."""
    if expert is None:
        return [msg.text("専門家登録の情報がないため、退会の手続きはありません。")]
    if expert.status == "withdrawn":
        return [msg.text(already_withdrawn(ctx, expert) + "\n" + AGAIN)]
    return _busy(expert) or ENGINE.enter(OWN, s, ctx, back=[])


# --- the secretariat's /withdraw ---------------------------------------------------------------


class SecretariatConfirm(ConfirmStep):
    help = "「はい」で退会処理し、専門家の個人データを削除します（元に戻せません）。「いいえ」で取りやめます。"

    def describe(self, s: Session, ctx: Context) -> str:
        expert = find_expert(s.data["expert_id"])
        if expert is None:
            return f"申請No.{s.data['expert_id']} は見つかりませんでした。"
        status = lifecycle.LABELS.get(expert.status, expert.status)
        return f"申請No.{expert.id}（{expert_name(expert)}さん・{status}）を退会処理します。\n{plan(ctx, expert)}"

    def confirmed(self, s: Session, ctx: Context) -> list[Message]:
        if ctx.user.role != "secretariat":
            ctx.audit("auth.refused", target=f"expert:{s.data['expert_id']}", reason="withdraw")
            return [msg.text("退会処理は事務局のみ行えます。")]
        expert = find_expert(s.data["expert_id"])
        if expert is None:
            return [msg.text(f"申請No.{s.data['expert_id']} は見つかりませんでした。")]
        reason = str(s.data["reason"])
        try:
            done = withdraw(ctx, expert, reason)
        except IllegalTransition:
            return [msg.text(f"申請No.{expert.id} は{already_withdrawn(ctx, expert)}")]
        user = expert.user
        if user.following:
            ctx.notify(user.line_user_id, [msg.text(
                f"事務局で退会の手続きを行いました。\n理由：{reason}\n\n{outcome(ctx, done)}\n\n{AGAIN}")], "withdrawn")
        told = "専門家に伝えました。" if user.following else "専門家はこのアカウントをブロックしているため、LINEでは伝えていません。"
        return [msg.text(f"申請No.{expert.id}（{done.name}さん）を退会処理しました。{told}\n{outcome(ctx, done)}")]


DECISION = Flow("withdraw_decision", "退会処理", [SecretariatConfirm()])


def begin_secretariat(s: Session, ctx: Context, expert: Expert, reason: str) -> list[Message]:
    """``/withdraw N 理由``: the plan and the reason, then はい / いいえ."""
    if expert.status == "withdrawn":
        return [msg.text(f"申請No.{expert.id} は{already_withdrawn(ctx, expert)}")]
    return ENGINE.enter(DECISION, s, ctx, data={"expert_id": expert.id, "reason": reason}, back=[])
