"""Profile entry (プロフィール登録): the expert's application form.

Reads top to bottom like the conversation: the transitions the step order
does not say, the entry (1. terms, 2. institution code), then the flow —
the entry, the application's questions in the order asked (``items.py``:
氏名 … 振込口座, 写真, each in the module named for what it asks) and the
summary. Every answer is saved to the expert's draft in SQL the moment it
is given; the session only remembers the position, and a lost one is
recomputed from the draft along that same order.

Why the questions are listed in ``items.py`` and not here: the summary's
rows, the reviewers' cards and change requests all read that list, and
they sit below this module (the summary step sends the application).
Only the entry, which has no 修正 row, is written here.
"""
from __future__ import annotations

import re
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import REVIEW_STATE, Advance, Finish, Flow, Invalid, Outcome
from conversations.kit.steps import choose
from conversations.registration import items
from conversations.registration import summary as final
from conversations.registration.parts import Question, draft_of
from storage import repo
from storage.models import Institution
from storage.sessions import Session

EDITABLE_STATUSES = ("draft", "returned")

# --- transitions (the steps, in order: FLOW at the end, with items.QUESTIONS) ----------


def _has_institution(ctx: Context) -> bool:
    expert = repo.expert_of(ctx.user)
    return bool(expert and expert.draft.get("institution_id"))


def _named_a_qualification(ctx: Context) -> bool:
    """資格証明書 is required only when a qualification was named."""
    expert = repo.expert_of(ctx.user)
    return bool(expert and expert.draft.get("qualifications"))


# ``next`` moves on to the next item of the form: to the step listed after
# it (engine: ``in_order``) unless declared here. The other triggers move
# inside one item (その他 → its name, a requirement's years → detail, a
# confirmation answered いいえ → the question again), so a fix made from
# the summary only returns there once the item is complete (engine: EDIT_FLAG).
TRANSITIONS: list[dict[str, Any]] = [
    # The institution code often arrives before the terms (from the QR
    # code), so its step is skipped when it is already known.
    {"trigger": "next", "source": "terms", "dest": "name", "conditions": _has_institution},
    # 保有資格, then 登録要件: (a) is met by any qualification.
    {"trigger": "other", "source": "qualifications", "dest": "qualification_other"},
    {"trigger": "next", "source": "qualifications", "dest": "requirements"},
    # Each chosen requirement: years (below its minimum → dropped), then a one-line detail.
    {"trigger": "years", "source": ["requirements", "requirement_detail"], "dest": "requirement_years"},
    {"trigger": "detail", "source": "requirement_years", "dest": "requirement_detail"},
    # Done with the requirements (or none applies): on to 専門分野 from any of its parts.
    {"trigger": "next", "source": ["requirements", "requirement_years"], "dest": "expertise"},
    # 振込口座: bank, then ゆうちょ 記号・番号 or branch / 種目 / 番号, then the holder.
    {"trigger": "retry", "source": "bank_confirm", "dest": "bank"},
    {"trigger": "yucho", "source": "bank_confirm", "dest": "yucho"},
    {"trigger": "next", "source": "bank_confirm", "dest": "branch"},
    {"trigger": "next", "source": "yucho", "dest": "holder"},
    {"trigger": "retry", "source": "branch_confirm", "dest": "branch"},
    # 写真: 顔写真, 本人確認書類, 資格証明書 (only when a qualification was named), 通帳.
    {"trigger": "next", "source": "photo_id_doc", "dest": "photo_qualification", "conditions": _named_a_qualification},
    {"trigger": "next", "source": "photo_id_doc", "dest": "photo_passbook"},
    # The summary: 修正 jumps to an item's first question; finishing the item comes back.
    *({"trigger": f"edit_{state}", "source": "confirm", "dest": state} for state in items.EDITABLE),
]


# --- 1. terms -----------------------------------------------------------------------


class Terms(Question):
    name = "terms"
    title = "個人情報の取扱いへの同意"
    help = "登録情報の利用目的と共有先についての説明です。同意いただける場合は「同意する」、同意いただけない場合は「同意しない」と送ってください。"
    choices = ["同意する", "同意しない"]
    answer_key = "terms_version"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        question = msg.text("上記の内容に同意しますか？", self.choices)
        if again:
            return [msg.text("個人情報の取扱いに同意しますか？", self.choices)]
        return [msg.text(ctx.program.terms.text), question]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        choice = choose(inp, self.choices)
        if choice is None:
            return Invalid("「同意する」または「同意しない」でお答えください。")
        expert, _ = draft_of(ctx)
        if choice == "同意しない":
            ctx.audit("terms.declined", target=f"expert:{expert.id}", reason=ctx.program.terms.version)
            return Finish([msg.text(
                "同意いただけない場合、登録を進めることができません。\n"
                "内容をご確認のうえ、登録される場合は改めて「登録」と送ってください。",
                ["登録"],
            )])
        terms = ctx.program.terms
        repo.update_draft(
            expert,
            terms_version=terms.version,
            terms_sha256=terms.sha256,
            terms_agreed_at=ctx.now.isoformat(),
            terms_event_id=ctx.event_id,
        )
        ctx.audit("terms.agreed", target=f"expert:{expert.id}", after=terms.version)
        return Advance([msg.text("ありがとうございます。登録を始めます。")])


# --- 2. institution code -------------------------------------------------------------

CODE_RE = re.compile(r"^(?:機関コード\s*[:：]?\s*)?([A-Z0-9]{6})$")


def parse_institution_code(text: str) -> str | None:
    """The code as typed or pre-filled from the QR link (「機関コード:ABC123」)."""
    match = CODE_RE.match(text.strip().upper())
    return match.group(1) if match else None


class InstitutionCode(Question):
    name = "institution"
    title = "支援機関コード"
    help = "面談した支援機関（認定支援機関・よろず支援拠点）から受け取った6桁の英数字コードです。わからない場合は支援機関の担当者にお問い合わせください。"
    answer_key = "institution_id"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("支援機関から受け取った「機関コード」（英数字6桁）を入力してください。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        code = parse_institution_code(inp.text) if inp.kind == "text" else None
        if code is None:
            return Invalid("機関コードは英数字6桁です（例：AB12CD）。")
        institution = repo.institution_by_code(code)
        if institution is None:
            return Invalid(f"機関コード「{code}」は見つかりませんでした。支援機関から受け取ったコードをご確認ください。")
        set_institution(ctx, institution)
        return Advance([msg.text(f"支援機関「{institution.name}」で受け付けます。")])


def set_institution(ctx: Context, institution: Institution) -> None:
    expert, draft = draft_of(ctx)
    if draft.get("institution_id") != institution.id:
        repo.update_draft(expert, institution_id=institution.id, institution_name=institution.name)
        ctx.audit("draft.institution", target=f"expert:{expert.id}", after=str(institution.id))


# --- the flow ------------------------------------------------------------------------------------


class ProfileFlow(Flow):
    def resume_state(self, ctx: Context) -> str | None:
        """The first question this application asks and has no answer for, sub-questions
        included (bank chosen, no branch → branch); everything answered: the summary."""
        expert = repo.expert_of(ctx.user)
        if expert is None or expert.status not in EDITABLE_STATUSES:
            return None
        draft = expert.draft or {}
        questions = [step for step in self.steps.values() if isinstance(step, Question)]
        return next((q.name for q in questions if q.applies(ctx, draft) and not q.answered(draft)), REVIEW_STATE)

    def on_begin(self, ctx: Context) -> None:
        repo.ensure_expert(ctx.user)

    def on_restart(self, ctx: Context) -> None:
        expert = repo.expert_of(ctx.user)
        if expert is not None and expert.status in EDITABLE_STATUSES:
            repo.clear_draft(expert)


FLOW = ProfileFlow(
    "profile",
    "プロフィール登録",
    [Terms(), InstitutionCode(), *items.QUESTIONS, final.Confirm()],
    TRANSITIONS,
    start_words=["登録", "プロフィール登録", "プロフィール"],
)
STATES = FLOW.order  # the step names in the order they are asked (the list above and items.QUESTIONS)


def can_edit(ctx: Context) -> bool:
    """An application not yet sent (or returned) can be edited freely."""
    expert = repo.expert_of(ctx.user)
    return expert is None or expert.status in EDITABLE_STATUSES
