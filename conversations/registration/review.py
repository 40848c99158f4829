"""Review decisions, the shared part: what a decision is, who may take it, the cards.

The conversation that takes a decision (reason → confirm → apply) is
``conversations/registration/decision.py``; submission, change requests and the cards
here are what it builds on, so they never import it back.

Reviewers and the secretariat most likely use LINE for PC, which shows no
quick replies, so every decision is a Flex button and every decision is
confirmed with another button before it is applied. A return or rejection
first asks for the reason, which reaches the expert verbatim.

Scope is checked twice — when the button is tapped and again when the
decision is applied — because a card can be tapped long after it was sent.
A reviewer acts on their own institution's applications only; anything
else is refused and audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from linebot.v3.messaging import Message

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context
from domain import lifecycle
from domain.names import expert_name
from storage.models import Expert, LineUser


@dataclass(frozen=True)
class Op:
    """One decision someone can take on an application."""

    key: str  # postback action, e.g. inst_return
    trigger: str  # lifecycle trigger
    role: str  # reviewer / secretariat
    verb: str  # shown in prompts: 承認 / 差し戻し / 却下
    needs_reason: bool


OPS: dict[str, Op] = {op.key: op for op in [
    Op("inst_approve", "institution_approve", "reviewer", "承認", False),
    Op("inst_return", "institution_return", "reviewer", "差し戻し", True),
    Op("inst_reject", "institution_reject", "reviewer", "却下", True),
    Op("sec_approve", "secretariat_approve", "secretariat", "承認", False),
    Op("sec_return", "secretariat_return", "secretariat", "差し戻し", True),
    Op("sec_reject", "secretariat_reject", "secretariat", "却下", True),
    Op("revoke", "", "secretariat", "役割の取り消し", False),
    Op("chg_approve", "", "reviewer", "承認", False),
    Op("chg_return", "", "reviewer", "差し戻し", True),
]}
CHANGE_OPS = ("chg_approve", "chg_return")


def action_data(action: str, **fields: object) -> str:
    """Postback data for a button: ``a=<action>&id=…`` (≤ 300 characters)."""
    return urlencode({"a": action, **{k: str(v) for k, v in fields.items()}})


def parse_action(data: str) -> tuple[str, dict[str, str]]:
    fields = {k: v[0] for k, v in parse_qs(data, keep_blank_values=True).items()}
    return fields.pop("a", ""), fields


# --- who may do what -------------------------------------------------------------


def may_act(ctx: Context, op: Op, expert: Expert) -> bool:
    user = ctx.user
    if op.role == "secretariat":
        return user.role == "secretariat"
    return user.role == "reviewer" and user.institution_id is not None and user.institution_id == expert.institution_id  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def may_view(ctx: Context, expert: Expert) -> bool:
    return may_view_as(ctx.user, expert)


def may_view_as(user: LineUser, expert: Expert) -> bool:
    """The secretariat, or a reviewer of the expert's institution (checked again when a signed page opens)."""
    return user.role == "secretariat" or (
        user.role == "reviewer" and user.institution_id is not None and user.institution_id == expert.institution_id)  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor


def refuse(ctx: Context, what: str, expert_id: object) -> list[Message]:
    ctx.audit("auth.refused", target=f"expert:{expert_id}", reason=what)
    return [msg.text("この申請を操作する権限がありません。")]


def find_expert(raw: object) -> Expert | None:
    try:
        return Expert.get_or_none(Expert.id == int(str(raw)))
    except (TypeError, ValueError):
        return None


# --- what reviewers see ------------------------------------------------------------------




def application_card(ctx: Context, expert: Expert, ops: list[Op], public_rows: list[tuple[str, str]],
                     photo_links: list[tuple[str, str]], why: str | None = None,
                     photos: list[tuple[str, str]] | None = None) -> Message:
    """The card: ``why`` is its first line when pushed, ``photos`` the photos as small images
    (short-lived signed URLs), and the buttons are only the decisions still possible (``ops``)."""
    draft = expert.draft or {}
    actions = [("詳細", action_data("detail", id=expert.id))] + [(op.verb, action_data(op.key, id=expert.id)) for op in ops]
    return flex.application_card(
        expert_no=expert.id,
        name=expert_name(expert),
        kana=f"{draft.get('kana_family', '')}　{draft.get('kana_given', '')}".strip(),
        institution=str(draft.get("institution_name") or (expert.institution.name if expert.institution else "—")),
        status_label=lifecycle.LABELS.get(expert.status, expert.status),
        rows=public_rows,
        photo_links=photo_links,
        actions=actions,
        why=why,
        photos=photos or [],
    )
