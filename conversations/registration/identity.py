"""The person: 氏名, フリガナ and 生年月日 (who applies).

The form asks them right after the entry (terms, institution code): the
name is what reviewers see first, and the フリガナ is what the bank
account's holder must match (``account.py``).
"""
from __future__ import annotations

from datetime import date
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Invalid, Outcome
from conversations.registration.parts import Question, draft_of, kept, save
from domain.normalize import InvalidInput, format_name, parse_kana_name, parse_person_name
from domain.validators import MAX_AGE, MIN_AGE, parse_birthdate, show_birthdate
from storage.sessions import Session


def full_name(draft: dict[str, Any], family: str, given: str) -> str:
    """「山田　太郎」 on the summary, from the two draft keys."""
    return format_name(draft.get(family, ""), draft.get(given, "")).strip() or "—"


# --- 3. 氏名 ----------------------------------------------------------------------------------


class Name(Question):
    name = "name"
    title = "氏名"
    help = "戸籍上のお名前を、姓と名の間にスペースを入れて入力してください（全角・半角どちらのスペースでも構いません）。"
    accepts, wrong_kind_text = frozenset({TEXT}), "氏名を文字で入力してください。"
    answer_key, summary_label = "family_name", "氏名"

    def summary(self, draft: dict[str, Any]) -> str:
        return full_name(draft, "family_name", "given_name")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("氏名を入力してください。\n姓と名の間にスペースを入れてください（例：山田 太郎）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            family, given = parse_person_name(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        save(ctx, family_name=family, given_name=given)
        return Advance()


# --- 4. フリガナ --------------------------------------------------------------------------------


class Kana(Question):
    name = "kana"
    title = "フリガナ"
    help = "お名前の読みをカタカナで、姓と名の間にスペースを入れて入力してください。ひらがなで入力しても自動でカタカナに変換します。"
    accepts, wrong_kind_text = frozenset({TEXT}), "フリガナを文字で入力してください。"
    answer_key, summary_label = "kana_family", "フリガナ"

    def summary(self, draft: dict[str, Any]) -> str:
        return full_name(draft, "kana_family", "kana_given")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("フリガナを入力してください（例：ヤマダ タロウ）。\nひらがなでも入力できます。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            family, given = parse_kana_name(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        save(ctx, kana_family=family, kana_given=given)
        return Advance([msg.text(f"フリガナを「{format_name(family, given)}」で保存しました。")])


# --- 5. 生年月日 --------------------------------------------------------------------------------


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (29 Feb → 28 Feb)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


class Birthdate(Question):
    name = "birthdate"
    title = "生年月日"
    help = (
        "「カレンダーから選ぶ」で日付を選ぶか、西暦または和暦で入力してください"
        "（例：1980年4月1日、1980/4/1、昭和55年4月1日、S55.4.1）。"
        f"ご登録いただけるのは{MIN_AGE}歳以上{MAX_AGE}歳以下の方です。"
    )
    picker_data = "dp=birthdate"
    summary_label = "生年月日"

    def summary(self, draft: dict[str, Any]) -> str:
        return show_birthdate(draft.get("birthdate"))

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        today = ctx.now.date()
        latest, earliest = years_before(today, MIN_AGE), years_before(today, MAX_AGE)
        initial = min(max(date(1975, 1, 1), earliest), latest)
        picker = msg.date_picker_item(
            "カレンダーから選ぶ", self.picker_data, initial.isoformat(), earliest.isoformat(), latest.isoformat()
        )
        _, draft = draft_of(ctx)
        saved = show_birthdate(draft["birthdate"]) if draft.get("birthdate") else None
        return [msg.text(
            "生年月日を教えてください。\n下の「カレンダーから選ぶ」で選ぶか、西暦・和暦で入力してください"
            "（例：1980年4月1日、昭和55年4月1日）。" + kept("登録", saved),
            extra=[picker],
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.kind == "postback" and inp.data == self.picker_data:
            raw = inp.params.get("date")
            if not isinstance(raw, str):
                return Invalid("日付を受け取れませんでした。もう一度カレンダーから選ぶか、入力してください。")
        elif inp.kind == "text":
            raw = inp.raw_text
        else:
            return Invalid("生年月日をカレンダーから選ぶか、文字で入力してください。")
        try:
            birth = parse_birthdate(raw, today=ctx.now.date())
        except InvalidInput as exc:
            return Invalid(str(exc))
        save(ctx, birthdate=birth.isoformat())
        return Advance([msg.text(f"生年月日を{show_birthdate(birth.isoformat())}で保存しました。")])

