"""Profile entry (プロフィール登録): the expert's application form.

Reads top to bottom like the conversation: the states, the transitions,
then one step per question with its prompt beside it. Every answer is
saved to the expert's draft in SQL the moment it is given; the session
only remembers the position.

Steps 1–4 (terms, institution code, 氏名, フリガナ) are written here; the
questions of steps 5–13 (生年月日 … 振込口座) live in
``conversations/registration/steps.py`` in the same order, and are assembled
into the one flow below.
"""
from __future__ import annotations

import re
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Finish, Flow, Invalid, Outcome, Step
from conversations.kit.steps import choose
from conversations.registration import steps
from conversations.registration import summary as final
from domain import banks
from domain.normalize import InvalidInput, format_name, parse_kana_name, parse_person_name
from storage import repo
from storage.models import Expert, Institution
from storage.sessions import Session

EDITABLE_STATUSES = ("draft", "returned")

# --- transitions (the steps, in order, are listed in FLOW at the end) ------------------


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
    *({"trigger": f"edit_{state}", "source": "confirm", "dest": state} for state in final.EDITABLE),
    {"trigger": "review", "source": "*", "dest": "confirm"},
]


def _draft(ctx: Context) -> tuple[Expert, dict[str, Any]]:
    expert = repo.ensure_expert(ctx.user)
    return expert, dict(expert.draft or {})


# --- 1. terms -----------------------------------------------------------------------


class Terms(Step):
    name = "terms"
    title = "個人情報の取扱いへの同意"
    help = "登録情報の利用目的と共有先についての説明です。同意いただける場合は「同意する」、同意いただけない場合は「同意しない」と送ってください。"
    choices = ["同意する", "同意しない"]

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        question = msg.text("上記の内容に同意しますか？", self.choices)
        if again:
            return [msg.text("個人情報の取扱いに同意しますか？", self.choices)]
        return [msg.text(ctx.program.terms.text), question]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        choice = choose(inp, self.choices)
        if choice is None:
            return Invalid("「同意する」または「同意しない」でお答えください。")
        expert, _ = _draft(ctx)
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


class InstitutionCode(Step):
    name = "institution"
    title = "支援機関コード"
    help = "面談した支援機関（認定支援機関・よろず支援拠点）から受け取った6桁の英数字コードです。わからない場合は支援機関の担当者にお問い合わせください。"

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
    expert, draft = _draft(ctx)
    if draft.get("institution_id") != institution.id:
        repo.update_draft(expert, institution_id=institution.id, institution_name=institution.name)
        ctx.audit("draft.institution", target=f"expert:{expert.id}", after=str(institution.id))


# --- 3. 氏名 ------------------------------------------------------------------------------


class Name(Step):
    name = "name"
    title = "氏名"
    help = "戸籍上のお名前を、姓と名の間にスペースを入れて入力してください（全角・半角どちらのスペースでも構いません）。"
    accepts, wrong_kind_text = frozenset({TEXT}), "氏名を文字で入力してください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("氏名を入力してください。\n姓と名の間にスペースを入れてください（例：山田 太郎）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            family, given = parse_person_name(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        expert, _ = _draft(ctx)
        repo.update_draft(expert, family_name=family, given_name=given)
        return Advance()


# --- 4. フリガナ ----------------------------------------------------------------------------


class Kana(Step):
    name = "kana"
    title = "フリガナ"
    help = "お名前の読みをカタカナで、姓と名の間にスペースを入れて入力してください。ひらがなで入力しても自動でカタカナに変換します。"
    accepts, wrong_kind_text = frozenset({TEXT}), "フリガナを文字で入力してください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("フリガナを入力してください（例：ヤマダ タロウ）。\nひらがなでも入力できます。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            family, given = parse_kana_name(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        expert, _ = _draft(ctx)
        repo.update_draft(expert, kana_family=family, kana_given=given)
        return Advance([msg.text(f"フリガナを「{format_name(family, given)}」で保存しました。")])


# --- 5–13: conversations/registration/steps.py ----------------------------------------------

STEPS_5_TO_13 = [
    steps.Birthdate(), steps.Phone(), steps.Email(), steps.Postal(), steps.Address(),
    steps.Qualifications(), steps.QualificationOther(),
    steps.Requirements(), steps.RequirementYears(), steps.RequirementDetail(),
    steps.Expertise(), steps.Areas(),
    steps.Bank(), steps.BankConfirm(), steps.Yucho(), steps.Branch(), steps.BranchConfirm(),
    steps.AccountType(), steps.AccountNumber(), steps.Holder(),
]


# --- end of the steps built so far --------------------------------------------------------



# --- the flow ------------------------------------------------------------------------------------


class ProfileFlow(Flow):
    def resume_state(self, ctx: Context) -> str | None:
        """The first unanswered question, sub-questions included (bank chosen, no branch → branch)."""
        expert = repo.expert_of(ctx.user)
        if expert is None or expert.status not in EDITABLE_STATUSES:
            return None
        draft = expert.draft or {}
        simple = [
            ("terms_version", "terms"), ("institution_id", "institution"), ("family_name", "name"),
            ("kana_family", "kana"), ("birthdate", "birthdate"), ("phone", "phone"), ("email", "email"),
            ("postal", "postal"), ("address", "address"),
        ]
        for key, state in simple:
            if not draft.get(key):
                return state
        if "qualifications" not in draft:
            return "qualifications"
        other = steps.other_qualification(ctx)
        if other in draft["qualifications"] and not draft.get("qualification_other"):
            return "qualification_other"
        if not isinstance(draft.get("requirements"), list):
            return "requirements"
        for entry in draft["requirements"]:
            if "years" not in entry:
                return "requirement_years"
            if "detail" not in entry:
                return "requirement_detail"
        if not draft.get("requirements_met"):  # not concluded, or none met (refused): choose again
            return "requirements"
        for key, state in (("expertise", "expertise"), ("areas", "areas"), ("bank_code", "bank")):
            if not draft.get(key):
                return state
        if draft["bank_code"] == banks.YUCHO_BANK_CODE:
            if not draft.get("account_number_enc"):
                return "yucho"
        else:
            for key, state in (("branch_code", "branch"), ("account_type", "account_type"),
                               ("account_number_enc", "account_number")):
                if not draft.get(key):
                    return state
        if not draft.get("holder_enc"):
            return "holder"
        photos = draft.get("photos") or {}
        for key in final.required_photos(draft):
            if key not in photos:
                return f"photo_{key}"
        return "confirm"

    def on_begin(self, ctx: Context) -> None:
        repo.ensure_expert(ctx.user)

    def on_restart(self, ctx: Context) -> None:
        expert = repo.expert_of(ctx.user)
        if expert is not None and expert.status in EDITABLE_STATUSES:
            repo.clear_draft(expert)


FLOW = ProfileFlow(
    "profile",
    "プロフィール登録",
    [Terms(), InstitutionCode(), Name(), Kana(), *STEPS_5_TO_13,
     final.FacePhoto(), final.IdPhoto(), final.QualificationPhoto(), final.PassbookPhoto(), final.Confirm()],
    TRANSITIONS,
    start_words=["登録", "プロフィール登録", "プロフィール"],
)
STATES = FLOW.order  # the step names in the order they are asked (the list above is the one declaration)


def can_edit(ctx: Context) -> bool:
    """An application not yet sent (or returned) can be edited freely."""
    expert = repo.expert_of(ctx.user)
    return expert is None or expert.status in EDITABLE_STATUSES
