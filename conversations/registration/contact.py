"""How to reach the expert: 電話番号, メールアドレス, 郵便番号 and 住所.

Each is one typed line (``TextStep``); 郵便番号 and 住所 are one item on
the summary (住所), so a fix from there walks through both.
"""
from __future__ import annotations

import re
from typing import Any

from conversations.kit.context import Context
from conversations.registration.parts import TextStep, joined
from domain.normalize import InvalidInput, clean
from domain.validators import format_phone_display, parse_email, parse_phone, parse_postal_code

# --- 6. 電話番号 ------------------------------------------------------------------------


class Phone(TextStep):
    name = "phone"
    title = "電話番号"
    help = "日中に連絡がつく携帯電話か固定電話の番号を、市外局番から入力してください。ハイフンはあってもなくても構いません（例：090-1234-5678）。"
    question = "日中に連絡がつく電話番号を入力してください（例：090-1234-5678）。"
    not_text = "電話番号を数字で入力してください（例：090-1234-5678）。"
    saved = "電話番号を「{phone_display}」で保存しました。"
    current_key = "phone_display"
    summary_label = "電話番号"

    def summary(self, draft: dict[str, Any]) -> str:
        return joined(draft.get("phone_display") or draft.get("phone"))

    def parse(self, raw: str) -> str:
        return parse_phone(raw)

    def fields(self, ctx: Context, e164: str) -> dict[str, Any]:
        """The E.164 number to dial, and the national form to show."""
        return {"phone": e164, "phone_display": format_phone_display(e164)}


# --- 7. メール ------------------------------------------------------------------------------


class Email(TextStep):
    name = "email"
    title = "メールアドレス"
    help = "事務局からの連絡や書類の送付に使います。パソコンでも携帯でも、ふだん確認しているアドレスを入力してください（例：taro@example.com）。"
    question = "メールアドレスを入力してください（例：taro@example.com）。"
    not_text = "メールアドレスを文字で入力してください（例：taro@example.com）。"
    saved = "メールアドレスを「{email}」で保存しました。"
    summary_label = "メール"

    def parse(self, raw: str) -> str:
        return parse_email(raw)


# --- 8. 郵便番号・住所 -----------------------------------------------------------------------


class Postal(TextStep):
    name = "postal"
    title = "郵便番号"
    help = "ご自宅または事務所の郵便番号を7桁で入力してください。〒やハイフンはあってもなくても構いません（例：100-0001）。"
    group_end = False  # the address follows
    question = "ご連絡先住所の郵便番号を入力してください（例：100-0001）。"
    not_text = "郵便番号を数字7桁で入力してください（例：100-0001）。"
    saved = "郵便番号「〒{postal}」を保存しました。"
    summary_label = "住所"  # the item is the whole address: 〒 and 住所

    def summary(self, draft: dict[str, Any]) -> str:
        return f"〒{draft.get('postal', '')} {draft.get('address', '')}".strip() if draft.get("postal") else "—"

    def parse(self, raw: str) -> str:
        return parse_postal_code(raw)


ADDRESS_MIN, ADDRESS_MAX = 5, 200


class Address(TextStep):
    name = "address"
    title = "住所"
    help = f"郵便番号に続く住所を、都道府県から番地・建物名まで入力してください（{ADDRESS_MIN}〜{ADDRESS_MAX}文字）。"
    question = "住所を都道府県から番地・建物名まで入力してください（例：東京都千代田区丸の内1-1-1 ○○ビル3階）。"
    not_text = "住所を文字で入力してください。"
    saved = "住所を保存しました。"

    def parse(self, raw: str) -> str:
        address = clean(raw)
        if not address:
            raise InvalidInput("住所を入力してください（例：東京都千代田区丸の内1-1-1）。")
        if re.fullmatch(r"[0-9\-〒\s]+", address):
            raise InvalidInput("住所を都道府県から入力してください（番号だけでは登録できません）。")
        if not ADDRESS_MIN <= len(address) <= ADDRESS_MAX:
            raise InvalidInput(f"住所は{ADDRESS_MIN}〜{ADDRESS_MAX}文字で入力してください（入力は{len(address)}文字でした）。")
        return address

