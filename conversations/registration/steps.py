"""Profile entry steps 5–13 (registration): 生年月日 … 振込口座.

The flow itself — states, transitions, ``FLOW`` — is assembled in
``conversations/registration/form.py``; this module holds the questions, in the order
the conversation asks them, each with its prompt beside it. What they share:

* Every answer goes to the expert's draft at once (``repo.update_draft``).
  The session keeps only the position and what is on screen (a bank
  candidate, the region the area picker has open, which requirement a
  sub-question is about) — all of it recomputable from the draft.
* ``ask(again=True)`` stands on its own: it follows an ``Invalid`` message
  or a ``Stay`` toggle, and LINE shows only the last message's quick
  replies, so it always carries the current selection and the choices.
* Every choice can be typed: its word or its number.
* Groups of questions (郵便番号 → 住所, 資格 → 登録要件, the bank account)
  either mark their first parts ``group_end = False`` or move inside the
  group with their own trigger names, so a fix made from the summary
  returns there only once the whole item is answered again.
* Bank account numbers and holder names are encrypted before they reach
  the draft; no reply ever shows more than the last 4 digits, and nothing
  the user typed for them is echoed (a refused reply token turns replies
  into outbox rows).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Finish, Invalid, Outcome, Stay, Step
from conversations.kit.steps import choose
from domain import banks
from domain.normalize import InvalidInput, clean, format_name, to_zengin_kana
from domain.validators import (
    MAX_AGE,
    MIN_AGE,
    PREFECTURES,
    REGIONS,
    format_phone_display,
    parse_birthdate,
    parse_email,
    parse_phone,
    parse_postal_code,
    parse_prefectures,
    show_birthdate,
)
from program import Requirement
from storage import repo
from storage.crypto import last4
from storage.models import Expert
from storage.sessions import Session

YES_NO = ["はい", "いいえ"]
DONE_WORDS = ("完了", "かんりょう", "終わり", "おわり", "決定", "以上")
CHECK = "✓"


def _draft(ctx: Context) -> tuple[Expert, dict[str, Any]]:
    expert = repo.ensure_expert(ctx.user)
    return expert, dict(expert.draft or {})


def _save(ctx: Context, **fields: Any) -> None:
    expert, _ = _draft(ctx)
    repo.update_draft(expert, **fields)


def _current(label: str, value: object) -> str:
    """「（現在の登録：…）」 under a question asked again, so 戻る shows what is kept."""
    return f"\n（現在の{label}：{value}）" if value not in (None, "", []) else ""


def _is_done(inp: Input) -> bool:
    return inp.kind == "text" and inp.text.rstrip("。.!！") in DONE_WORDS


class TextStep(Step):
    """A question answered by one typed line: parse it, save it to the draft, say what was kept.

    Most of the form is this shape, and what differs is only words and the
    parser, so a subclass states them: ``question`` (followed by what is
    registered now, so 戻る shows what is kept), ``not_text`` for a sticker
    or photo, ``parse`` (raising ``InvalidInput`` with the reason, sent
    verbatim) and ``saved`` (formatted with the fields stored). ``fields``
    is the one hook for answers stored as more than one key.
    """

    question = ""
    not_text = ""  # the answer to a sticker or a photo (see ``wrong_kind``)
    accepts = frozenset({TEXT})
    saved = ""
    current_key = ""  # the draft key shown as what is registered now (default: the step's name)
    current_label = "登録"

    def current(self, draft: dict[str, Any]) -> object:
        """What the draft holds for this question now (shown when it is asked again)."""
        return draft.get(self.current_key or self.name)

    def parse(self, raw: str) -> Any:
        raise NotImplementedError

    def fields(self, ctx: Context, value: Any) -> dict[str, Any]:
        return {self.name: value}

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        return [msg.text(self.question + _current(self.current_label, self.current(draft)))]

    def wrong_kind(self) -> str:
        return self.not_text

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            value = self.parse(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        fields = self.fields(ctx, value)
        _save(ctx, **fields)
        return Advance([msg.text(self.saved.format(**fields))])


# --- 5. 生年月日 ------------------------------------------------------------------------


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (29 Feb → 28 Feb)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


class Birthdate(Step):
    name = "birthdate"
    title = "生年月日"
    help = (
        "「カレンダーから選ぶ」で日付を選ぶか、西暦または和暦で入力してください"
        "（例：1980年4月1日、1980/4/1、昭和55年4月1日、S55.4.1）。"
        f"ご登録いただけるのは{MIN_AGE}歳以上{MAX_AGE}歳以下の方です。"
    )
    picker_data = "dp=birthdate"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        today = ctx.now.date()
        latest, earliest = years_before(today, MIN_AGE), years_before(today, MAX_AGE)
        initial = min(max(date(1975, 1, 1), earliest), latest)
        picker = msg.date_picker_item(
            "カレンダーから選ぶ", self.picker_data, initial.isoformat(), earliest.isoformat(), latest.isoformat()
        )
        _, draft = _draft(ctx)
        saved = show_birthdate(draft["birthdate"]) if draft.get("birthdate") else None
        return [msg.text(
            "生年月日を教えてください。\n下の「カレンダーから選ぶ」で選ぶか、西暦・和暦で入力してください"
            "（例：1980年4月1日、昭和55年4月1日）。" + _current("登録", saved),
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
        _save(ctx, birthdate=birth.isoformat())
        return Advance([msg.text(f"生年月日を{show_birthdate(birth.isoformat())}で保存しました。")])


# --- 6. 電話番号 ------------------------------------------------------------------------


class Phone(TextStep):
    name = "phone"
    title = "電話番号"
    help = "日中に連絡がつく携帯電話か固定電話の番号を、市外局番から入力してください。ハイフンはあってもなくても構いません（例：090-1234-5678）。"
    question = "日中に連絡がつく電話番号を入力してください（例：090-1234-5678）。"
    not_text = "電話番号を数字で入力してください（例：090-1234-5678）。"
    saved = "電話番号を「{phone_display}」で保存しました。"
    current_key = "phone_display"

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


# --- multi-select: shared by 資格, 登録要件, 専門分野, 対応地域 ----------------------------------
#
# A tap toggles one item; a typed list ("1 3", "1,3", "１、３", names) adds
# every item named; 完了 ends. The choice in progress is saved in the draft
# under ``selecting`` (so a lost session loses nothing), the final list
# under the step's own key when 完了 is given.

_SPLIT_RE = re.compile(r"[\s、,，;；/／]+")


def _match_one(token: str, options: list[str]) -> str | None:
    token = token.strip(CHECK + " ")
    if token in options:
        return token
    if re.fullmatch(r"[0-9]+", token) and 1 <= int(token) <= len(options):
        return options[int(token) - 1]
    hits = [o for o in options if token and token in o]
    return hits[0] if len(hits) == 1 else None


def pick(text: str, options: list[str]) -> tuple[list[str], list[str]]:
    """Items named in ``text`` by word or number → (picked, not understood)."""
    whole = _match_one(text.rstrip("。.!！"), options)
    if whole is not None:
        return [whole], []
    picked: list[str] = []
    unknown: list[str] = []
    for token in (t for t in _SPLIT_RE.split(text.rstrip("。.!！")) if t):
        hit = _match_one(token, options)
        if hit is None and "・" in token:  # 「税理士・弁護士」
            parts = [_match_one(p, options) for p in token.split("・") if p]
            if parts and all(parts):
                picked += [p for p in parts if p]
                continue
        if hit is None:
            unknown.append(token)
        else:
            picked.append(hit)
    return picked, unknown


def toggle(current: list[str], picked: list[str], order: list[str]) -> list[str]:
    """One item toggles (a second tap removes it); several are all added."""
    chosen = set(current)
    if len(picked) == 1 and picked[0] in chosen:
        chosen.discard(picked[0])
    else:
        chosen.update(picked)
    return [o for o in order if o in chosen]


def selecting(draft: dict[str, Any], step: str, saved: list[str]) -> list[str]:
    """The choice in progress at ``step``, else the saved answer."""
    sel = draft.get("selecting") or {}
    if isinstance(sel, dict) and sel.get("step") == step:
        return list(sel.get("items") or [])
    return list(saved)


def keep_selecting(ctx: Context, step: str, items: list[str]) -> None:
    _save(ctx, selecting={"step": step, "items": items})


def numbered(options: list[str], chosen: Sequence[str] = (), start: int = 1) -> str:
    return "\n".join(f"{i}. {CHECK if o in chosen else '　'}{o}" for i, o in enumerate(options, start))


def marked(option: str, chosen: list[str]) -> tuple[str, str]:
    """A quick-reply choice: ✓ on the label when chosen; tapping sends the plain word."""
    return (CHECK + option if option in chosen else option, option)


def shown_list(items: list[str]) -> str:
    return "、".join(items) if items else "（まだありません）"


def _unknown(unknown: list[str], what: str) -> Invalid:
    return Invalid(f"「{'、'.join(unknown[:3])}」は{what}の選択肢にありません。番号か、選択肢の言葉で入力してください。")


# --- 9. 保有資格 ----------------------------------------------------------------------


def other_qualification(ctx: Context) -> str | None:
    """The configured 「その他公的資格」 choice, which asks for its name."""
    return next((q for q in ctx.program.qualifications if q.startswith("その他")), None)


class Qualifications(Step):
    name = "qualifications"
    accepts, wrong_kind_text = frozenset({TEXT}), "資格をボタンで選ぶか、番号で入力してください。"
    title = "保有資格"
    help = (
        "お持ちの公的資格をすべて選び、最後に「完了」を押してください。もう一度押すと選択を外せます。"
        "番号をまとめて入力することもできます（例：1 3）。資格がない場合は「なし」を押してください。"
    )
    none_word = "なし"
    # Fixing the qualifications changes requirement (a): walk on through 登録要件.
    group_end = False

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        options = list(ctx.program.qualifications)
        chosen = selecting(draft, self.name, draft.get("qualifications") or [])
        head = "保有している資格をすべて選び、「完了」を押してください（複数選べます）。" if not again else "保有資格をほかにもあれば選び、「完了」を押してください。"
        body = (
            f"{head}\n\n{numbered(options, chosen)}\n{len(options) + 1}. 　{self.none_word}\n\n"
            f"選択中：{shown_list(chosen)}\n番号でも入力できます（例：1 3）。"
        )
        return [msg.text(body, [marked(o, chosen) for o in options] + [self.none_word, "完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = _draft(ctx)
        options = list(ctx.program.qualifications)
        chosen = selecting(draft, self.name, draft.get("qualifications") or [])
        if _is_done(inp):
            if not chosen:
                return Invalid("資格を選んでから「完了」を押してください。お持ちでない場合は「なし」を押してください。")
            return self._finish(ctx, chosen)
        if choose(inp, options + [self.none_word]) == self.none_word or inp.text in ("ない", "無し", "資格なし"):
            return self._finish(ctx, [])
        picked, unknown = pick(inp.text, options)
        if unknown or not picked:
            return _unknown(unknown or [inp.text], "保有資格")
        keep_selecting(ctx, self.name, toggle(chosen, picked, options))
        return Stay()

    def _finish(self, ctx: Context, chosen: list[str]) -> Outcome:
        other = other_qualification(ctx)
        fields: dict[str, Any] = {"qualifications": chosen, "selecting": None}
        if other not in chosen:
            fields["qualification_other"] = None
        _save(ctx, **fields)
        done = msg.text(f"保有資格を「{'、'.join(chosen) or 'なし'}」で保存しました。")
        return Advance([done], trigger="other" if other in chosen else "next")


class QualificationOther(TextStep):
    name = "qualification_other"
    title = "その他公的資格の名称"
    help = "「その他公的資格」を選んだ場合に、その資格の正式な名称を入力してください。複数ある場合は「、」で区切ってください（例：社会保険労務士、行政書士）。"
    group_end = False
    question = "「その他公的資格」の名称を入力してください（例：社会保険労務士、行政書士）。"
    not_text = "資格の名称を入力してください（例：社会保険労務士）。"
    saved = "「{qualification_other}」を保存しました。"

    def parse(self, raw: str) -> str:
        name = clean(raw)
        if len(name) < 2:
            raise InvalidInput(self.not_text)
        if len(name) > 60:
            raise InvalidInput(f"資格の名称は60文字以内で入力してください（入力は{len(name)}文字でした）。")
        return name


# --- 10. 登録要件 -----------------------------------------------------------------------
#
# (a) — a requirement without ``min_years`` — is met by any qualification.
# The others are chosen here, then each chosen one gets two sub-questions:
# years, then a one-line detail. The draft keeps them in choice order:
# ``requirements = [{"key": "b", "years": 12, "detail": "…"}, …]``; the
# session's ``req_at`` = [part, key] says which sub-question is on screen.

NOT_APPLICABLE = "該当なし"


def qualification_requirement(ctx: Context) -> Requirement | None:
    return next((r for r in ctx.program.requirements if r.min_years is None), None)


def experience_requirements(ctx: Context) -> list[Requirement]:
    return [r for r in ctx.program.requirements if r.min_years is not None]


def requirement(ctx: Context, key: str) -> Requirement | None:
    return next((r for r in ctx.program.requirements if r.key == key), None)


def _entries(draft: dict[str, Any]) -> list[dict[str, Any]]:
    value = draft.get("requirements")
    return [dict(e) for e in value if isinstance(e, dict) and e.get("key")] if isinstance(value, list) else []


def _qualification_met(ctx: Context, draft: dict[str, Any]) -> bool:
    return qualification_requirement(ctx) is not None and bool(draft.get("qualifications"))


def _qualifications_text(draft: dict[str, Any]) -> str:
    names = [q for q in draft.get("qualifications") or []]
    if draft.get("qualification_other"):
        names = [f"{q}（{draft['qualification_other']}）" if q.startswith("その他") else q for q in names]
    return "、".join(names)


def _tag(r: Requirement) -> str:
    return f"({r.key})"


def _req_sequence(draft: dict[str, Any]) -> list[tuple[str, str]]:
    return [(part, e["key"]) for e in _entries(draft) for part in ("years", "detail")]


def req_target(s: Session, draft: dict[str, Any], part: str) -> dict[str, Any] | None:
    """The requirement a sub-question (``part``: years | detail) is about.

    ``req_at`` points at the sub-question to ask. Arriving at the other
    kind (戻る from (c)'s years lands on a detail question) means the
    nearest earlier one of that kind — (b)'s detail. Without a pointer
    (the session was lost) it is the first unanswered one.
    """
    seq = _req_sequence(draft)
    if not seq:
        return None
    at = s.data.get("req_at")
    if isinstance(at, list) and tuple(at) in seq:
        pos = seq.index(tuple(at))
    elif at == "done":
        pos = len(seq)
    else:
        entries = {e["key"]: e for e in _entries(draft)}
        pos = next((i for i, (p, k) in enumerate(seq) if p not in entries[k]), len(seq))
    if pos < len(seq) and seq[pos][0] == part:
        hit = pos
    else:
        earlier = [i for i in range(min(pos, len(seq)) - 1, -1, -1) if seq[i][0] == part]
        later = [i for i in range(pos, len(seq)) if seq[i][0] == part]
        hit = (earlier or later)[0]
    s.data["req_at"] = list(seq[hit])
    return next(e for e in _entries(draft) if e["key"] == seq[hit][1])


def requirements_refusal(ctx: Context) -> list[Message]:
    lines = []
    for r in ctx.program.requirements:
        lines.append(f"{_tag(r)} {r.label}")
    return [msg.text(
        "申し訳ありません。この事業の専門家として登録するには、次のいずれかの要件を満たす必要があります。\n\n"
        + "\n".join(lines)
        + "\n\nご回答の内容では、いずれの要件にも当てはまらないため、登録申請は送信していません。"
        "これまでの入力内容は保存されています。状況が変わりましたら「登録」と送って、入力を再開してください。",
        ["登録"],
    )]


def conclude_requirements(s: Session, ctx: Context, before: Sequence[Message] = ()) -> Outcome:
    """All chosen requirements answered: record which are met, go on or refuse politely."""
    expert, draft = _draft(ctx)
    met = [r.key for r in ctx.program.requirements if r.min_years is None and _qualification_met(ctx, draft)]
    met += [e["key"] for e in _entries(draft) if "years" in e and "detail" in e]
    repo.update_draft(expert, requirements_met=met)
    s.data["req_at"] = "done"
    if not met:
        ctx.audit("registration.requirements_unmet", target=f"expert:{expert.id}")
        return Finish(list(before) + requirements_refusal(ctx))
    shown = "".join(f"({k})" for k in met)
    return Advance(list(before) + [msg.text(f"登録要件{shown}を満たしていることを確認しました。")])


class Requirements(Step):
    name = "requirements"
    accepts, wrong_kind_text = frozenset({TEXT}), "当てはまる要件をボタンで選ぶか、番号で入力してください。"
    title = "登録要件"
    help = (
        "この事業に登録できるのは、(a) 公的資格をお持ちの方、または (b)〜(d) の経験がある方です。"
        "当てはまるものをすべて選んで「完了」を押すと、それぞれの経験年数と内容をお聞きします。"
        f"当てはまるものがなければ「{NOT_APPLICABLE}」を押してください。"
    )

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        options = experience_requirements(ctx)
        keys = [r.key for r in options]
        chosen = selecting(draft, self.name, [e["key"] for e in _entries(draft)])
        qual = qualification_requirement(ctx)
        if qual is not None and _qualification_met(ctx, draft):
            head = (
                f"保有資格（{_qualifications_text(draft)}）により、登録要件{_tag(qual)}「{qual.label}」を満たしています。\n"
                f"ほかに当てはまる要件があれば選んで「完了」を、なければ「{NOT_APPLICABLE}」を押してください。"
            )
        else:
            head = (
                "登録には、次の要件のいずれかを満たす必要があります"
                + (f"（公的資格がないため{_tag(qual)}は対象外です）" if qual is not None else "")
                + f"。\n当てはまるものをすべて選んで「完了」を押してください。どれにも当てはまらない場合は「{NOT_APPLICABLE}」を押してください。"
            )
        lines = [f"{i}. {CHECK if r.key in chosen else '　'}{_tag(r)} {r.label}" for i, r in enumerate(options, 1)]
        lines.append(f"{len(options) + 1}. 　{NOT_APPLICABLE}")
        chosen_tags = [f"({k})" for k in keys if k in chosen]
        body = f"{head}\n\n" + "\n".join(lines) + f"\n\n選択中：{shown_list(chosen_tags)}\n番号でも入力できます（例：1 3）。"
        choices = [((CHECK if r.key in chosen else "") + f"{_tag(r)} {r.label}", _tag(r)) for r in options]
        return [msg.text(body, choices + [NOT_APPLICABLE, "完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = _draft(ctx)
        options = experience_requirements(ctx)
        keys = [r.key for r in options]
        chosen = selecting(draft, self.name, [e["key"] for e in _entries(draft)])
        if _is_done(inp):
            if not chosen and not _qualification_met(ctx, draft):
                return Invalid(f"当てはまる要件を選んでから「完了」を押してください。どれにも当てはまらない場合は「{NOT_APPLICABLE}」を押してください。")
            return self._finish(s, ctx, chosen)
        if inp.text in (NOT_APPLICABLE, "なし", "該当しない", str(len(options) + 1)):
            return self._finish(s, ctx, [])
        # (b), （ｂ）, b, B, a number or words of the label all name a requirement.
        names = [f"{_tag(r)} {r.label}" for r in options]
        text = re.sub(r"\(([a-zA-Z])\)", r"\1", inp.text)
        tokens = [t for t in _SPLIT_RE.split(text) if t]
        if tokens and all(t.lower() in keys for t in tokens):
            picked = [t.lower() for t in tokens]
        else:
            found, unknown = pick(inp.text, names)
            if unknown or not found:
                return _unknown(unknown or [inp.text], "登録要件")
            picked = [keys[names.index(n)] for n in found]
        keep_selecting(ctx, self.name, toggle(chosen, picked, keys))
        return Stay()

    def _finish(self, s: Session, ctx: Context, chosen: list[str]) -> Outcome:
        expert, draft = _draft(ctx)
        old = {e["key"]: e for e in _entries(draft)}
        entries = [old.get(k, {"key": k}) for k in chosen]
        repo.update_draft(expert, requirements=entries, selecting=None, requirements_met=None)
        if not entries:
            return conclude_requirements(s, ctx)
        s.data["req_at"] = ["years", entries[0]["key"]]
        return Advance(trigger="years")


YEARS_RE = re.compile(r"(?:約|およそ)?([0-9]{1,3})(?:年間?|年以上)?(?:以上|くらい|ぐらい|程度|ほど)?")


class RequirementYears(Step):
    name = "requirement_years"
    title = "登録要件の経験年数"
    help = "選んだ要件について、その仕事に従事した年数を数字で入力してください（例：12）。必要な年数に満たない場合、その要件は対象外になります。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        entry = req_target(s, draft, "years")
        r = requirement(ctx, entry["key"]) if entry else None
        if entry is None or r is None:  # reached with nothing chosen (e.g. 戻る after a lost session)
            return Requirements().ask(s, ctx, again)
        return [msg.text(
            f"{_tag(r)} {r.label}\nこの経験の年数を数字で入力してください（例：12）。{r.min_years}年以上で要件を満たします。"
            + _current("回答", f"{entry['years']}年" if "years" in entry else None)
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        expert, draft = _draft(ctx)
        entry = req_target(s, draft, "years")
        r = requirement(ctx, entry["key"]) if entry else None
        if entry is None or r is None:
            outcome = Requirements().answer(s, inp, ctx)
            return Stay(outcome.messages) if isinstance(outcome, Advance) and outcome.trigger == "years" else outcome
        m = YEARS_RE.fullmatch(inp.text.replace(" ", "")) if inp.kind == "text" else None
        if m is None:
            return Invalid("経験年数を数字で入力してください（例：12）。")
        years = int(m.group(1))
        if years > 80:
            return Invalid("経験年数をご確認ください（例：12）。")
        entries = _entries(draft)
        index = next(i for i, e in enumerate(entries) if e["key"] == r.key)
        if years < (r.min_years or 0):
            del entries[index]
            repo.update_draft(expert, requirements=entries)
            note = msg.text(
                f"{_tag(r)}は{r.min_years}年以上の経験が条件のため、{years}年では要件を満たしません。この要件は対象外とします。"
            )
            if index < len(entries):
                s.data["req_at"] = ["years", entries[index]["key"]]
                return Stay([note])
            return conclude_requirements(s, ctx, [note])
        entries[index]["years"] = years
        repo.update_draft(expert, requirements=entries)
        s.data["req_at"] = ["detail", r.key]
        return Advance(trigger="detail")


DETAIL_MIN, DETAIL_MAX = 5, 100


class RequirementDetail(Step):
    name = "requirement_detail"
    title = "登録要件の経験内容"
    help = f"その経験の内容を一行（{DETAIL_MIN}〜{DETAIL_MAX}文字）で書いてください。支援機関と事務局が審査に使います（例：製造業の経営者として生産管理と人材育成を担当）。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        entry = req_target(s, draft, "detail")
        r = requirement(ctx, entry["key"]) if entry else None
        if entry is None or r is None:
            return Requirements().ask(s, ctx, again)
        return [msg.text(
            f"{_tag(r)} {r.label}（{entry.get('years', '?')}年）\nどのような経験か、一行で入力してください"
            "（例：製造業の経営者として生産管理と人材育成を担当）。"
            + _current("回答", entry.get("detail"))
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        expert, draft = _draft(ctx)
        entry = req_target(s, draft, "detail")
        if entry is None:
            return Requirements().answer(s, inp, ctx)
        detail = clean(inp.raw_text) if inp.kind == "text" else ""
        if len(detail) < DETAIL_MIN:
            return Invalid(f"経験の内容を{DETAIL_MIN}文字以上で入力してください（例：製造業の経営者として生産管理を担当）。")
        if len(detail) > DETAIL_MAX:
            return Invalid(f"経験の内容は一行・{DETAIL_MAX}文字以内で入力してください（入力は{len(detail)}文字でした）。")
        entries = _entries(draft)
        index = next(i for i, e in enumerate(entries) if e["key"] == entry["key"])
        entries[index]["detail"] = detail
        repo.update_draft(expert, requirements=entries)
        if index + 1 < len(entries):
            s.data["req_at"] = ["years", entries[index + 1]["key"]]
            return Advance(trigger="years")
        return conclude_requirements(s, ctx)


# --- 11. 専門分野 -----------------------------------------------------------------------


class Expertise(Step):
    name = "expertise"
    accepts, wrong_kind_text = frozenset({TEXT}), "専門分野をボタンで選ぶか、番号で入力してください。"
    title = "専門分野"
    help = "支援できる分野をすべて選び、最後に「完了」を押してください。もう一度押すと選択を外せます。番号をまとめて入力することもできます（例：1 3 5）。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        options = list(ctx.program.expertise)
        chosen = selecting(draft, self.name, draft.get("expertise") or [])
        head = "専門分野をすべて選び、「完了」を押してください（複数選べます）。" if not again else "専門分野をほかにもあれば選び、「完了」を押してください。"
        body = f"{head}\n\n{numbered(options, chosen)}\n\n選択中：{shown_list(chosen)}\n番号でも入力できます（例：1 3 5）。"
        # 12 fields + 完了 = 13, LINE's limit; the numbered text covers any more.
        return [msg.text(body, [marked(o, chosen) for o in options][: msg.MAX_QUICK_REPLY_ITEMS - 1] + ["完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = _draft(ctx)
        options = list(ctx.program.expertise)
        chosen = selecting(draft, self.name, draft.get("expertise") or [])
        if _is_done(inp):
            if not chosen:
                return Invalid("専門分野を1つ以上選んでから「完了」を押してください。")
            _save(ctx, expertise=chosen, selecting=None)
            s.data.pop("area_region", None)  # the area picker opens on its region list
            return Advance([msg.text(f"専門分野を「{'、'.join(chosen)}」で保存しました。")])
        picked, unknown = pick(inp.text, options)
        if unknown or not picked:
            return _unknown(unknown or [inp.text], "専門分野")
        keep_selecting(ctx, self.name, toggle(chosen, picked, options))
        return Stay()


# --- 12. 対応地域 --------------------------------------------------------------------------
#
# 47 prefectures do not fit a quick reply (13 items), so the list view
# offers the 8 regions + 全国 + 完了 and a region opens its prefectures
# (the open region is ``area_region`` in the session). Typed names and
# regions work in both views: 「東京、神奈川」 adds both, 「関東」 adds all
# of 関東, a single prefecture toggles.

ALL_IN_REGION = "その地方すべて"
REGION_LIST = "地方一覧"
NATIONWIDE = "全国"
OPEN_SUFFIX = "から選ぶ"


def _areas_shown(chosen: list[str]) -> str:
    if len(chosen) == len(PREFECTURES):
        return f"全国（{len(PREFECTURES)}都道府県）"
    return shown_list(chosen)


class Areas(Step):
    name = "areas"
    accepts, wrong_kind_text = frozenset({TEXT}), "地域をボタンで選ぶか、都道府県名を入力してください。"
    title = "対応地域"
    help = (
        "支援に伺える都道府県を選び、最後に「完了」を押してください。地方を押すとその地方の都道府県が出ます。"
        "都道府県名や地方名を入力することもできます（例：東京、神奈川／関東）。1つの都道府県をもう一度送ると選択を外せます。"
    )

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        chosen = selecting(draft, self.name, draft.get("areas") or [])
        region = s.data.get("area_region")
        if region in REGIONS:
            prefs = REGIONS[region]
            body = (
                f"{region}で対応できる都道府県を選んでください（複数選べます）。\n\n{numbered(prefs, chosen)}\n\n"
                f"選択中：{_areas_shown(chosen)}\n「{ALL_IN_REGION}」で{region}をまとめて選べます。"
                f"ほかの地方は「{REGION_LIST}」から。選び終わったら「完了」を押してください。"
            )
            choices: list[msg.Choice] = [marked(p, chosen) for p in prefs]
            choices += [(ALL_IN_REGION, f"{region}すべて"), (REGION_LIST, REGION_LIST), "完了"]
            return [msg.text(body, choices)]
        regions = list(REGIONS)
        lines = []
        choices = []
        for i, r in enumerate(regions, 1):
            n = sum(1 for p in REGIONS[r] if p in chosen)
            count = f"（{n}）" if n else ""
            lines.append(f"{i}. {r}{count}")
            if len(REGIONS[r]) == 1:  # 北海道: the region is the prefecture
                choices.append(marked(r, chosen))
            else:
                choices.append((f"{r}{count}", r + OPEN_SUFFIX))
        lines.append(f"{len(regions) + 1}. {NATIONWIDE}")
        head = "支援に伺える地域（都道府県）を選んでください。地方を押すと都道府県を選べます。" if not again else "対応地域（都道府県）を続けて選び、終わったら「完了」を押してください。"
        body = (
            f"{head}\n\n" + "\n".join(lines) + f"\n\n選択中：{_areas_shown(chosen)}\n"
            "都道府県名や地方名を入力することもできます（例：東京、神奈川／関東）。"
        )
        return [msg.text(body, choices + [NATIONWIDE, "完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = _draft(ctx)
        chosen = selecting(draft, self.name, draft.get("areas") or [])
        order = list(PREFECTURES)
        text = inp.text.rstrip("。.!！")
        region = s.data.get("area_region")
        if _is_done(inp):
            if not chosen:
                return Invalid("対応できる都道府県を1つ以上選んでから「完了」を押してください。")
            _save(ctx, areas=chosen, selecting=None)
            s.data.pop("area_region", None)
            s.data.pop("bank_choices", None)  # the bank question opens afresh
            return Advance([msg.text(f"対応地域を「{_areas_shown(chosen)}」で保存しました。")])
        if text in (REGION_LIST, REGION_LIST + "へ", "一覧"):
            s.data.pop("area_region", None)
            return Stay()
        regions = list(REGIONS)
        opened = text[: -len(OPEN_SUFFIX)] if text.endswith(OPEN_SUFFIX) else None
        if region in REGIONS and opened is None:
            prefs = REGIONS[region]
            if text in (ALL_IN_REGION, "すべて", "全部", region + "すべて"):
                return self._keep(ctx, self._toggle_all(chosen, prefs, order))
            if re.fullmatch(r"[0-9]+", text):
                if not 1 <= int(text) <= len(prefs):
                    return Invalid(f"{region}の番号は1〜{len(prefs)}です。都道府県名で入力することもできます。")
                return self._keep(ctx, toggle(chosen, [prefs[int(text) - 1]], order))
        elif re.fullmatch(r"[0-9]+", text):
            n = int(text)
            if n == len(regions) + 1:
                return self._keep(ctx, self._toggle_all(chosen, order, order))
            if not 1 <= n <= len(regions):
                return Invalid(f"地方の番号は1〜{len(regions)}、全国は{len(regions) + 1}です。都道府県名で入力することもできます。")
            opened = regions[n - 1]
        if opened is not None:
            if opened not in REGIONS:
                return Invalid(f"「{opened}」という地方はありません。地方の一覧から選んでください。")
            if len(REGIONS[opened]) == 1:
                return self._keep(ctx, toggle(chosen, REGIONS[opened], order))
            s.data["area_region"] = opened
            return Stay()
        if text == NATIONWIDE:
            return self._keep(ctx, self._toggle_all(chosen, order, order))
        try:
            picked = parse_prefectures(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        return self._keep(ctx, toggle(chosen, picked, order))

    @staticmethod
    def _toggle_all(chosen: list[str], group: list[str], order: list[str]) -> list[str]:
        """「すべて」 twice clears the group again."""
        if all(p in chosen for p in group):
            return [p for p in chosen if p not in group]
        return [p for p in order if p in chosen or p in group]

    def _keep(self, ctx: Context, items: list[str]) -> Outcome:
        keep_selecting(ctx, self.name, items)
        return Stay()


# --- 13. 振込口座 --------------------------------------------------------------------------
#
# bank → bank_confirm → (ゆうちょ: yucho) | branch → branch_confirm →
# account_type → account_number, then holder. The number and the holder are
# encrypted (``ctx.crypto``); the draft keeps ``account_last4`` to show and a
# keyed ``account_blind`` index for duplicate checks.

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


def _crypto(ctx: Context) -> Any:
    if ctx.crypto is None:  # never fall back to plaintext
        raise RuntimeError("ctx.crypto is not configured: bank details cannot be stored")
    return ctx.crypto


def _account_fields(ctx: Context, bank_code: str, branch_code: str, number: str) -> dict[str, str]:
    crypto = _crypto(ctx)
    return {
        "account_number_enc": crypto.encrypt(number),
        "account_blind": crypto.blind_index(bank_code + branch_code + number, "bank-account"),
        "account_last4": last4(number),
    }


# Answers that belong to one bank/branch: cleared when the bank or branch changes.
AFTER_BANK = ("branch_code", "branch_name", "account_type", "account_number_enc", "account_blind", "account_last4")
AFTER_BRANCH = ("account_number_enc", "account_blind", "account_last4")


def _choice_list(items: list[tuple[str, str]]) -> str:
    return "\n".join(f"{i}. {code} {name}" for i, (code, name) in enumerate(items, 1))


class LookupStep(Step):
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

    def first_question(self, ctx: Context) -> list[Message]:
        _, draft = _draft(ctx)
        return [msg.text(
            "謝金の振込先口座をお聞きします。\n金融機関名か、4桁の金融機関コードを入力してください（例：みずほ銀行、0001）。"
            + _current("登録", draft.get("bank_name")),
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


class BankConfirm(Step):
    name = "bank_confirm"
    title = "振込口座（金融機関の確認）"
    help = "表示された金融機関で正しければ「はい」、違う場合は「いいえ」を押して入力し直してください。"
    group_end = False

    def _code(self, s: Session, ctx: Context) -> str | None:
        _, draft = _draft(ctx)
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
        expert, draft = _draft(ctx)
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
                **_account_fields(ctx, banks.YUCHO_BANK_CODE, branch_code, number)}


class Branch(LookupStep):
    name = "branch"
    title = "振込口座（支店）"
    help = "口座のある支店の名前（例：新宿、本店）か、3桁の支店コードを入力してください。通帳やキャッシュカードに書かれています。"
    choices_key, candidate_key, code_digits = "branch_choices", "branch_candidate", 3
    not_text = "支店名か3桁の支店コードを文字で入力してください。"

    @staticmethod
    def _bank(ctx: Context) -> tuple[str, str]:
        _, draft = _draft(ctx)
        return draft.get("bank_code") or "", draft.get("bank_name", "")

    def first_question(self, ctx: Context) -> list[Message]:
        _, draft = _draft(ctx)
        return [msg.text(
            f"{draft.get('bank_name', '')}の支店名か、3桁の支店コードを入力してください（例：新宿、001）。"
            + _current("登録", draft.get("branch_name"))
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


class BranchConfirm(Step):
    name = "branch_confirm"
    title = "振込口座（支店の確認）"
    help = "表示された支店で正しければ「はい」、違う場合は「いいえ」を押して入力し直してください。"
    group_end = False

    def _branch(self, s: Session, ctx: Context) -> tuple[str, banks.Branch | None]:
        _, draft = _draft(ctx)
        bank_code = draft.get("bank_code") or ""
        code = s.data.get("branch_candidate") or draft.get("branch_code") or ""
        return bank_code, banks.get_branch(bank_code, code) if bank_code else None

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        bank_code, branch = self._branch(s, ctx)
        if branch is None:
            return [msg.text("支店がまだ選ばれていません。「いいえ」を押して、支店を入力してください。", ["いいえ"])]
        _, draft = _draft(ctx)
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
        expert, draft = _draft(ctx)
        fields: dict[str, Any] = {"branch_code": branch.code, "branch_name": branch_display(bank_code, branch)}
        if draft.get("branch_code") != branch.code:
            fields.update({k: None for k in AFTER_BRANCH})
        repo.update_draft(expert, **fields)
        return Advance()


class AccountType(Step):
    name = "account_type"
    accepts, wrong_kind_text = frozenset({TEXT}), "口座の種類を「普通」「当座」「貯蓄」から選んでください。"
    title = "振込口座（預金種目）"
    help = "口座の種類です。ほとんどの個人の口座は「普通」です（総合口座も「普通」）。"
    group_end = False

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = _draft(ctx)
        return [msg.text(
            "口座の種類を選んでください。\n1. 普通（総合口座を含む）\n2. 当座\n3. 貯蓄" + _current("登録", draft.get("account_type")),
            list(banks.ACCOUNT_TYPES),
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        kind = choose(inp, list(banks.ACCOUNT_TYPES))
        if kind is None:
            try:
                kind = banks.parse_account_type(inp.raw_text)
            except InvalidInput as exc:
                return Invalid(str(exc))
        _save(ctx, account_type=kind)
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

    def parse(self, raw: str) -> str:
        return banks.parse_account_number(raw)

    def fields(self, ctx: Context, number: str) -> dict[str, Any]:
        """Encrypted, with its blind index and last 4 digits: never the number itself."""
        _, draft = _draft(ctx)
        return _account_fields(ctx, draft.get("bank_code") or "", draft.get("branch_code") or "", number)


class Holder(Step):
    name = "holder"
    accepts, wrong_kind_text = frozenset({TEXT}), "口座名義をカタカナで入力してください（例：ヤマダ タロウ）。"
    title = "振込口座（口座名義）"
    help = "通帳に書かれている口座名義を、カタカナで入力してください（ひらがなでも構いません）。謝金はご本人名義の口座にのみお振り込みします。"

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
        expert, draft = _draft(ctx)
        own = own_kana(draft)
        if not banks.holder_matches_own_name(holder, own):
            return Invalid(
                f"本人名義の口座のみ登録できます。入力された口座名義が、ご登録のフリガナ（{own}）と一致しません。\n"
                "ご本人名義の口座の名義を、通帳に書かれているとおりに入力してください。"
            )
        repo.update_draft(expert, holder_enc=_crypto(ctx).encrypt(holder))
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
    holder = _crypto(ctx).decrypt(draft["holder_enc"])
    if banks.holder_matches_own_name(holder, own_kana(draft)):
        return None
    return (f"口座名義がフリガナ（{own_kana(draft)}）と一致しません。本人名義の口座のみ登録できます。\n"
            "フリガナか口座名義を「修正」してください。")


def account_line(draft: dict[str, Any]) -> str:
    """「みずほ銀行 新宿支店 普通 ＊＊＊4567」: what chat may show of an account."""
    parts = [draft.get("bank_name"), draft.get("branch_name"), draft.get("account_type"), draft.get("account_last4")]
    return " ".join(str(p) for p in parts if p) or "—"
