"""The expert's rights as the router sees them: their flows, the words at rest, and a withdrawn expert.

``handlers.router`` registers ``FLOWS`` and ``ACTIONS`` and asks
:func:`at_rest` first when no flow is active:

- 「登録内容」「登録情報」「個人情報」: the disclosure (``disclosure``), for anyone,
  withdrawn experts included (what is kept for the accounts is theirs to see);
- 「退会」: the expert's withdrawal, confirmed first (``withdrawal``);
- a withdrawn expert writing anything else is told they have withdrawn and
  how to register again: 「登録」 (or an institution code) starts a new
  application on the same record (the lifecycle's ``reapply``, audited).
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.registration import form as profile
from conversations.rights import disclosure, withdrawal
from domain import lifecycle
from storage import repo
from storage.models import Expert
from storage.sessions import Session

FLOWS = [withdrawal.OWN, withdrawal.DECISION]
ACTIONS: dict[str, Any] = {}
WITHDRAW_WORDS = ("退会", "退会する", "退会したい", "退会手続き")
STAFF_ROLES = ("reviewer", "secretariat")


def overrides_flow(s: Session, inp: Input) -> bool:
    """「退会」 or 「登録内容」 typed in the middle of another flow: the request wins over the question."""
    return inp.text in (*WITHDRAW_WORDS, *disclosure.WORDS) and s.flow not in {f.name for f in FLOWS}


def closed(ctx: Context) -> bool:
    """A withdrawn expert (not also staff): nothing of the expert's flows is open to them."""
    expert = repo.expert_of(ctx.user)
    return expert is not None and expert.status == "withdrawn" and ctx.user.role not in STAFF_ROLES


def withdrawn_text(ctx: Context, expert: Expert) -> str:
    """What a withdrawn expert is told whatever they write: what happened, what is kept, how to come back."""
    kept = ("会計のため、謝金・報告書の記録と、その支払いに必要な氏名・振込口座のみ保管しています。"
            if expert.profile else "")
    return (f"{withdrawal.already_withdrawn(ctx, expert)}\n個人データは削除しました。{kept}"
            f"保管している内容は「登録内容」で確認できます。\n{withdrawal.AGAIN}")


def reopen(ctx: Context) -> bool:
    """A withdrawn expert registering again: their record becomes a new application (audited move)."""
    expert = repo.expert_of(ctx.user)
    if expert is None or expert.status != "withdrawn":
        return False
    lifecycle.change_status(expert, "reapply", actor=ctx.user_id, event_id=ctx.event_id)
    return True


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    text = inp.text if inp.kind == "text" else ""
    expert = repo.expert_of(ctx.user)
    if text in disclosure.WORDS:
        return disclosure.messages(ctx, expert)
    if closed(ctx):
        assert expert is not None  # closed() found it
        if text in profile.FLOW.start_words:
            reopen(ctx)
            return [msg.text("新しい申請として、専門家登録を最初から始めます。")] + ENGINE.enter(profile.FLOW, s, ctx)
        return [msg.text(withdrawn_text(ctx, expert), ["登録", "登録内容"])]
    if text in WITHDRAW_WORDS:
        return withdrawal.begin_own(s, ctx, expert)
    return None
