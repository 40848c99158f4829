"""振込口座, where the fee is paid: the bank and its branch (ゆうちょ: 記号・番号).

bank → bank_confirm → (ゆうちょ: yucho) | branch → branch_confirm, then the
account itself (``account.py``: 種目, 番号, 名義). A bank or branch is
typed by name or code, looked up in the zengin data and confirmed before
it is kept; choosing another one clears what belonged to the old one.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Invalid, Outcome, Stay
from conversations.kit.steps import choose
from conversations.registration.account import account_fields, paid_to_yucho
from conversations.registration.parts import Question, TextStep, draft_of, kept
from domain import banks
from domain.normalize import InvalidInput, clean
from storage import repo
from storage.sessions import Session

YES_NO = ["はい", "いいえ"]
MAX_CHOICES = 12  # quick replies for candidates, leaving room under LINE's 13


def bank_display(bank: banks.Bank) -> str:
    """「みずほ銀行」「城南信金」: the zengin data drops 銀行 from bank names."""
    name = unicodedata.normalize("NFKC", bank.name)
    is_bank = bank.code < "1000" or bank.code == banks.YUCHO_BANK_CODE
    if is_bank and not name.endswith("銀行") and "・" not in name and "バンク" not in name:
        name += "銀行"
    return name


def branch_display(bank_code: str, branch: banks.Branch) -> str:
    """「新宿支店」「本店」「四〇八店」."""
    name = unicodedata.normalize("NFKC", branch.name)
    if bank_code == banks.YUCHO_BANK_CODE:
        return name + "店"
    if name.endswith(("店", "所", "部", "センター")):
        return name
    return name + "支店"


# Answers that belong to one bank/branch: cleared when the bank or branch changes.
AFTER_BANK = ("branch_code", "branch_name", "account_type", "account_number_enc", "account_blind", "account_last4")
AFTER_BRANCH = ("account_number_enc", "account_blind", "account_last4")


def _choice_list(items: list[tuple[str, str]]) -> str:
    return "\n".join(f"{i}. {code} {name}" for i, (code, name) in enumerate(items, 1))


class LookupStep(Question):
    """A name-or-code question answered from a list (banks, branches).

    One match (or one exact name among several) becomes the candidate the
    next step confirms; several are listed, numbered, and stay on screen
    while the user picks one or types a longer name.
    """

    group_end = False
    choices_key = ""  # s.data: the codes listed
    candidate_key = ""  # s.data: the code picked, for the confirmation
    code_digits = 0
    not_text = ""  # the answer to a sticker or a photo (see ``wrong_kind``)
    accepts = frozenset({TEXT})

    def search(self, ctx: Context, raw: str) -> list[Any]:
        raise NotImplementedError

    def get(self, ctx: Context, code: str) -> Any:
        raise NotImplementedError

    def display(self, ctx: Context, item: Any) -> str:
        raise NotImplementedError

    def exact(self, raw: str, item: Any) -> bool:
        raise NotImplementedError

    def not_found(self, ctx: Context, raw: str) -> str:
        raise NotImplementedError

    def first_question(self, ctx: Context) -> list[Message]:
        raise NotImplementedError

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _forget_detour(s)
        choices = s.data.get(self.choices_key) or []
        if choices:
            items = [(c, self.display(ctx, b)) for c in choices if (b := self.get(ctx, c))]
            return [msg.text(
                f"候補から選んでください（番号か{self.code_digits}桁のコードでも選べます）。"
                "見つからない場合は、もう少し詳しい名前を入力してください。\n\n" + _choice_list(items),
                [(f"{code} {name}", code) for code, name in items],
            )]
        return self.first_question(ctx)

    def wrong_kind(self) -> str:
        return self.not_text

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        choices = s.data.get(self.choices_key) or []
        if choices and re.fullmatch(r"[0-9]{1,2}", inp.text) and 1 <= int(inp.text) <= len(choices):
            return self._candidate(s, choices[int(inp.text) - 1])
        try:
            found = self.search(ctx, inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        if not found:  # the candidates shown before stay on screen
            return Invalid(self.not_found(ctx, inp.raw_text))
        exact = [b for b in found if self.exact(inp.raw_text, b)]
        if len(found) == 1 or len(exact) == 1:
            return self._candidate(s, (exact or found)[0].code)
        s.data[self.choices_key] = [b.code for b in found[:MAX_CHOICES]]
        more = f"（ほかに{len(found) - MAX_CHOICES}件あります）" if len(found) > MAX_CHOICES else ""
        return Stay([msg.text(f"「{clean(inp.raw_text)[:30]}」で{len(found)}件見つかりました{more}。")])

    def _candidate(self, s: Session, code: str) -> Outcome:
        s.data.pop(self.choices_key, None)
        s.data[self.candidate_key] = code
        return Advance()


class Bank(LookupStep):
    name = "bank"
    title = "振込口座（金融機関）"
    help = "謝金の振込先です。ご本人名義の口座の金融機関名（例：みずほ銀行、城南信金）か、4桁の金融機関コードを入力してください。ゆうちょ銀行は「ゆうちょ」と入力してください。"
    choices_key, candidate_key, code_digits = "bank_choices", "bank_candidate", 4
    not_text = "金融機関名か4桁の金融機関コードを文字で入力してください。"
    answer_key, summary_label = "bank_code", "振込口座"

    def summary(self, draft: dict[str, Any]) -> str:
        """The whole account (bank, branch, 種目, last 4 digits): the item is all of 振込口座."""
        bank = draft.get("bank_name")
        account = "—"
        if bank:
            account = f"{bank} {draft.get('branch_name', '')} {draft.get('account_type', '')} {draft.get('account_last4', '')}".strip()
        return account

    def first_question(self, ctx: Context) -> list[Message]:
        _, draft = draft_of(ctx)
        return [msg.text(
            "謝金の振込先口座をお聞きします。\n金融機関名か、4桁の金融機関コードを入力してください（例：みずほ銀行、0001）。"
            + kept("登録", draft.get("bank_name")),
            ["ゆうちょ銀行"],
        )]

    def search(self, ctx: Context, raw: str) -> list[Any]:
        return banks.find_bank(raw)

    def get(self, ctx: Context, code: str) -> Any:
        return banks.get_bank(code)

    def display(self, ctx: Context, item: Any) -> str:
        return bank_display(item)

    def exact(self, raw: str, item: Any) -> bool:
        return _same_name(raw, item)

    def not_found(self, ctx: Context, raw: str) -> str:
        return f"「{clean(raw)[:30]}」に当たる金融機関が見つかりませんでした。名前か4桁のコードをご確認ください（例：みずほ銀行、0001）。"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace(" ", "").casefold()


def _same_name(typed: str, bank: banks.Bank) -> bool:
    """「みずほ銀行」 names みずほ (0001) exactly, though みずほ信託 also matches."""
    t = _fold(typed)
    return t in (_fold(bank.name), _fold(bank_display(bank)), _fold(bank.kana))


def _forget_detour(s: Session) -> None:
    """After いいえ at a confirmation the question is asked afresh: drop that
    detour from the 戻る stack, so 戻る goes to the question before it."""
    if s.state in s.stack:
        del s.stack[s.stack.index(s.state):]


class BankConfirm(Question):
    name = "bank_confirm"
    title = "振込口座（金融機関の確認）"
    help = "表示された金融機関で正しければ「はい」、違う場合は「いいえ」を押して入力し直してください。"
    group_end = False

    def answered(self, draft: dict[str, Any]) -> bool:
        return True  # nothing of its own: the bank it confirms is the bank question's answer

    def _code(self, s: Session, ctx: Context) -> str | None:
        _, draft = draft_of(ctx)
        return s.data.get("bank_candidate") or draft.get("bank_code")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        bank = banks.get_bank(self._code(s, ctx) or "")
        if bank is None:
            return [msg.text("金融機関がまだ選ばれていません。「いいえ」を押して、金融機関を入力してください。", ["いいえ"])]
        return [msg.text(f"「{bank_display(bank)}」（金融機関コード {bank.code}）でよろしいですか？", YES_NO)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        choice = choose(inp, YES_NO)
        if choice is None:
            return Invalid("「はい」か「いいえ」でお答えください。")
        bank = banks.get_bank(self._code(s, ctx) or "")
        s.data.pop("bank_candidate", None)
        if choice == "いいえ" or bank is None:
            return Advance([msg.text("金融機関を入力し直してください。")], trigger="retry")
        expert, draft = draft_of(ctx)
        fields: dict[str, Any] = {"bank_code": bank.code, "bank_name": bank_display(bank)}
        if draft.get("bank_code") != bank.code:  # another bank: its branch and number go too
            fields.update({k: None for k in AFTER_BANK})
        repo.update_draft(expert, **fields)
        s.data.pop("branch_choices", None)
        if bank.code == banks.YUCHO_BANK_CODE:
            return Advance(trigger="yucho")
        return Advance()


class Yucho(TextStep):
    name = "yucho"
    title = "振込口座（ゆうちょ銀行の記号・番号）"
    help = "通帳の表紙の裏などに書かれた「記号」（5桁）と「番号」（最大8桁）を、間に「-」を入れて入力してください（例：14030-12345671）。他の金融機関からの振込用の店名・口座番号に自動で変換します。"
    group_end = False
    question = "ゆうちょ銀行の通帳に書かれた「記号」と「番号」を、間に「-」を入れて入力してください（例：14030-12345671）。"
    not_text = "記号と番号を数字で入力してください（例：14030-12345671）。"
    saved = "振込用の口座「{branch_name}（店番 {branch_code}） {account_type} 口座番号{account_last4}」に変換して保存しました。"
    current_label = "登録（口座番号）"
    answer_key = "account_number_enc"

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return paid_to_yucho(draft)

    def current(self, draft: dict[str, Any]) -> object:
        return draft.get("account_last4") if draft.get("branch_code") else None

    def parse(self, raw: str) -> tuple[str, str, str]:
        return banks.parse_yucho(raw)

    def fields(self, ctx: Context, value: tuple[str, str, str]) -> dict[str, Any]:
        """記号・番号 → the 店名・店番 and account number other banks transfer to."""
        branch_code, account_type, number = value
        branch = banks.get_branch(banks.YUCHO_BANK_CODE, branch_code)
        branch_name = branch_display(banks.YUCHO_BANK_CODE, branch) if branch else f"{branch_code}店"
        return {"branch_code": branch_code, "branch_name": branch_name, "account_type": account_type,
                **account_fields(ctx, banks.YUCHO_BANK_CODE, branch_code, number)}


class Branch(LookupStep):
    name = "branch"
    title = "振込口座（支店）"
    help = "口座のある支店の名前（例：新宿、本店）か、3桁の支店コードを入力してください。通帳やキャッシュカードに書かれています。"
    choices_key, candidate_key, code_digits = "branch_choices", "branch_candidate", 3
    not_text = "支店名か3桁の支店コードを文字で入力してください。"
    answer_key = "branch_code"

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return not paid_to_yucho(draft)

    @staticmethod
    def _bank(ctx: Context) -> tuple[str, str]:
        _, draft = draft_of(ctx)
        return draft.get("bank_code") or "", draft.get("bank_name", "")

    def first_question(self, ctx: Context) -> list[Message]:
        _, draft = draft_of(ctx)
        return [msg.text(
            f"{draft.get('bank_name', '')}の支店名か、3桁の支店コードを入力してください（例：新宿、001）。"
            + kept("登録", draft.get("branch_name"))
        )]

    def search(self, ctx: Context, raw: str) -> list[Any]:
        return banks.find_branch(self._bank(ctx)[0], raw)

    def get(self, ctx: Context, code: str) -> Any:
        return banks.get_branch(self._bank(ctx)[0], code)

    def display(self, ctx: Context, item: Any) -> str:
        return branch_display(self._bank(ctx)[0], item)

    def exact(self, raw: str, item: Any) -> bool:
        typed = _fold(re.sub(r"支店$", "", clean(raw)))
        return typed in (_fold(item.name), _fold(item.kana))

    def not_found(self, ctx: Context, raw: str) -> str:
        return (f"{self._bank(ctx)[1]}に「{clean(raw)[:30]}」に当たる支店が見つかりませんでした。"
                "支店名か3桁のコードをご確認ください。")


class BranchConfirm(Question):
    name = "branch_confirm"
    title = "振込口座（支店の確認）"
    help = "表示された支店で正しければ「はい」、違う場合は「いいえ」を押して入力し直してください。"
    group_end = False

    def answered(self, draft: dict[str, Any]) -> bool:
        return True  # nothing of its own: the branch it confirms is the branch question's answer

    def _branch(self, s: Session, ctx: Context) -> tuple[str, banks.Branch | None]:
        _, draft = draft_of(ctx)
        bank_code = draft.get("bank_code") or ""
        code = s.data.get("branch_candidate") or draft.get("branch_code") or ""
        return bank_code, banks.get_branch(bank_code, code) if bank_code else None

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        bank_code, branch = self._branch(s, ctx)
        if branch is None:
            return [msg.text("支店がまだ選ばれていません。「いいえ」を押して、支店を入力してください。", ["いいえ"])]
        _, draft = draft_of(ctx)
        return [msg.text(
            f"「{draft.get('bank_name', '')} {branch_display(bank_code, branch)}」（支店コード {branch.code}）でよろしいですか？", YES_NO
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        choice = choose(inp, YES_NO)
        if choice is None:
            return Invalid("「はい」か「いいえ」でお答えください。")
        bank_code, branch = self._branch(s, ctx)
        s.data.pop("branch_candidate", None)
        if choice == "いいえ" or branch is None:
            return Advance([msg.text("支店を入力し直してください。")], trigger="retry")
        expert, draft = draft_of(ctx)
        fields: dict[str, Any] = {"branch_code": branch.code, "branch_name": branch_display(bank_code, branch)}
        if draft.get("branch_code") != branch.code:
            fields.update({k: None for k in AFTER_BRANCH})
        repo.update_draft(expert, **fields)
        return Advance()


