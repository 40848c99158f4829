"""振込口座, the account itself: 預金種目, 口座番号 and 口座名義 (own name only).

The number and the holder are encrypted (``ctx.crypto``) before they reach
the draft; the draft keeps ``account_last4`` to show and a keyed
``account_blind`` index for duplicate checks. No reply ever shows more
than the last 4 digits, and nothing the user typed for them is echoed (a
refused reply token turns replies into outbox rows).
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Invalid, Outcome
from conversations.kit.steps import choose
from conversations.registration.parts import Question, TextStep, draft_of, kept, save
from domain import banks
from domain.normalize import InvalidInput, format_name, to_zengin_kana
from storage import repo
from storage.crypto import last4
from storage.sessions import Session


def paid_to_yucho(draft: dict[str, Any]) -> bool:
    """ゆうちょ: its 記号・番号 (``bank.Yucho``) stand for the branch, 種目 and number."""
    return draft.get("bank_code") == banks.YUCHO_BANK_CODE


def crypto_of(ctx: Context) -> Any:
    if ctx.crypto is None:  # never fall back to plaintext
        raise RuntimeError("ctx.crypto is not configured: bank details cannot be stored")
    return ctx.crypto


def account_fields(ctx: Context, bank_code: str, branch_code: str, number: str) -> dict[str, str]:
    """What the draft keeps of an account number: encrypted, its blind index, its last 4 digits."""
    crypto = crypto_of(ctx)
    return {
        "account_number_enc": crypto.encrypt(number),
        "account_blind": crypto.blind_index(bank_code + branch_code + number, "bank-account"),
        "account_last4": last4(number),
    }


class AccountType(Question):
    name = "account_type"
    accepts, wrong_kind_text = frozenset({TEXT}), "口座の種類を「普通」「当座」「貯蓄」から選んでください。"
    title = "振込口座（預金種目）"
    help = "口座の種類です。ほとんどの個人の口座は「普通」です（総合口座も「普通」）。"
    group_end = False

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return not paid_to_yucho(draft)

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        return [msg.text(
            "口座の種類を選んでください。\n1. 普通（総合口座を含む）\n2. 当座\n3. 貯蓄" + kept("登録", draft.get("account_type")),
            list(banks.ACCOUNT_TYPES),
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        kind = choose(inp, list(banks.ACCOUNT_TYPES))
        if kind is None:
            try:
                kind = banks.parse_account_type(inp.raw_text)
            except InvalidInput as exc:
                return Invalid(str(exc))
        save(ctx, account_type=kind)
        return Advance()


class AccountNumber(TextStep):
    name = "account_number"
    title = "振込口座（口座番号）"
    help = "通帳やキャッシュカードに書かれた口座番号（7桁まで）を入力してください。7桁に満たない場合は、前に0を補って保存します。"
    group_end = False
    question = "口座番号を入力してください（7桁までの数字、例：1234567）。\n番号は暗号化して保存し、画面には下4桁だけを表示します。"
    not_text = "口座番号を数字で入力してください（例：1234567）。"
    saved = "口座番号（{account_last4}）を保存しました。"
    current_key = "account_last4"
    answer_key = "account_number_enc"

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return not paid_to_yucho(draft)

    def parse(self, raw: str) -> str:
        return banks.parse_account_number(raw)

    def fields(self, ctx: Context, number: str) -> dict[str, Any]:
        """Encrypted, with its blind index and last 4 digits: never the number itself."""
        _, draft = draft_of(ctx)
        return account_fields(ctx, draft.get("bank_code") or "", draft.get("branch_code") or "", number)


class Holder(Question):
    name = "holder"
    accepts, wrong_kind_text = frozenset({TEXT}), "口座名義をカタカナで入力してください（例：ヤマダ タロウ）。"
    title = "振込口座（口座名義）"
    help = "通帳に書かれている口座名義を、カタカナで入力してください（ひらがなでも構いません）。謝金はご本人名義の口座にのみお振り込みします。"
    answer_key = "holder_enc"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(
            "口座名義（カタカナ）を、通帳に書かれているとおりに入力してください（例：ヤマダ タロウ）。\n"
            "ご本人名義の口座のみ登録できます。"
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            holder = to_zengin_kana(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        expert, draft = draft_of(ctx)
        own = own_kana(draft)
        if not banks.holder_matches_own_name(holder, own):
            return Invalid(
                f"本人名義の口座のみ登録できます。入力された口座名義が、ご登録のフリガナ（{own}）と一致しません。\n"
                "ご本人名義の口座の名義を、通帳に書かれているとおりに入力してください。"
            )
        repo.update_draft(expert, holder_enc=crypto_of(ctx).encrypt(holder))
        return Advance([msg.text(f"振込口座を登録しました：{account_line(draft)}（ご本人名義）")])


def own_kana(draft: dict[str, Any]) -> str:
    return format_name(draft.get("kana_family", ""), draft.get("kana_given", ""))


def holder_is_not_own(ctx: Context, draft: dict[str, Any]) -> str | None:
    """Why the account is not in the expert's own name, or None.

    Asked again at 送信: the holder was checked when typed, but the フリガナ
    can be changed from the summary afterwards (SPEC: own name only).
    """
    if not draft.get("holder_enc"):
        return None
    holder = crypto_of(ctx).decrypt(draft["holder_enc"])
    if banks.holder_matches_own_name(holder, own_kana(draft)):
        return None
    return (f"口座名義がフリガナ（{own_kana(draft)}）と一致しません。本人名義の口座のみ登録できます。\n"
            "フリガナか口座名義を「修正」してください。")


def account_line(draft: dict[str, Any]) -> str:
    """「みずほ銀行 新宿支店 普通 ＊＊＊4567」: what chat may show of an account."""
    parts = [draft.get("bank_name"), draft.get("branch_name"), draft.get("account_type"), draft.get("account_last4")]
    return " ".join(str(p) for p in parts if p) or "—"
