"""Who may register: 保有資格 (with the その他 name) and 登録要件 (years and detail per requirement).

The two are one part of the form because requirement (a) is met by any
qualification: fixing the qualifications from the summary walks on
through 登録要件. An applicant who meets no requirement is refused
politely here, with the answers kept.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Finish, Invalid, Outcome, Stay
from conversations.kit.steps import choose
from conversations.registration.multiselect import (
    CHECK,
    SPLIT_RE,
    is_done,
    keep_selecting,
    marked,
    not_a_choice,
    numbered,
    pick,
    refused,
    selected_line,
    selecting,
    shown_list,
    take_note,
    tapped,
    toggle,
    with_error,
)
from conversations.registration.parts import Question, TextStep, draft_of, kept, save
from domain.normalize import InvalidInput, clean
from program import Requirement
from storage import repo
from storage.sessions import Session

# --- 9. 保有資格 ----------------------------------------------------------------------


def other_qualification(ctx: Context) -> str | None:
    """The configured 「その他公的資格」 choice, which asks for its name."""
    return next((q for q in ctx.program.qualifications if q.startswith("その他")), None)


class Qualifications(Question):
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
    summary_label, blank_ok = "保有資格", True  # none is an answer

    def answered(self, draft: dict[str, Any]) -> bool:
        return "qualifications" in draft  # an empty list is 「なし」

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        options = list(ctx.program.qualifications)
        chosen = selecting(draft, self.name, draft.get("qualifications") or [])
        choices = [marked(o, chosen) for o in options] + [self.none_word, "完了"]
        line, error = take_note(s)
        if line is not None:
            return [msg.text(line, choices)]
        head = "保有している資格をすべて選び、「完了」を押してください（複数選べます）。" if not again else "保有資格をほかにもあれば選び、「完了」を押してください。"
        body = (
            f"{head}\n\n{numbered(options, chosen)}\n{len(options) + 1}. 　{self.none_word}\n\n"
            f"選択中：{shown_list(chosen)}\n番号でも入力できます（例：1 3）。"
        )
        return [msg.text(with_error(error, body), choices)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = draft_of(ctx)
        options = list(ctx.program.qualifications)
        chosen = selecting(draft, self.name, draft.get("qualifications") or [])
        if is_done(inp):
            if not chosen:
                return refused(s, ctx, self.name, "資格を選んでから「完了」を押してください。お持ちでない場合は「なし」を押してください。")
            return self._finish(ctx, chosen)
        if choose(inp, options + [self.none_word]) == self.none_word or inp.text in ("ない", "無し", "資格なし"):
            return self._finish(ctx, [])
        picked, unknown = pick(inp.text, options)
        if unknown or not picked:
            return refused(s, ctx, self.name, not_a_choice(unknown or [inp.text], "保有資格"))
        chosen = toggle(chosen, picked, options)
        keep_selecting(ctx, self.name, chosen)
        return tapped(s, selected_line(shown_list(chosen), len(chosen)))

    def _finish(self, ctx: Context, chosen: list[str]) -> Outcome:
        other = other_qualification(ctx)
        fields: dict[str, Any] = {"qualifications": chosen, "selecting": None}
        if other not in chosen:
            fields["qualification_other"] = None
        save(ctx, **fields)
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

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return other_qualification(ctx) in (draft.get("qualifications") or [])

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


def open_requirement(draft: dict[str, Any]) -> Any:
    """The first chosen requirement still without its years or its detail (None: all answered)."""
    chosen = draft.get("requirements")
    if not isinstance(chosen, list):
        return None
    return next((entry for entry in chosen if "years" not in entry or "detail" not in entry), None)


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
    expert, draft = draft_of(ctx)
    met = [r.key for r in ctx.program.requirements if r.min_years is None and _qualification_met(ctx, draft)]
    met += [e["key"] for e in _entries(draft) if "years" in e and "detail" in e]
    repo.update_draft(expert, requirements_met=met)
    s.data["req_at"] = "done"
    if not met:
        ctx.audit("registration.requirements_unmet", target=f"expert:{expert.id}")
        return Finish(list(before) + requirements_refusal(ctx))
    shown = "".join(f"({k})" for k in met)
    return Advance(list(before) + [msg.text(f"登録要件{shown}を満たしていることを確認しました。")])


class Requirements(Question):
    name = "requirements"
    accepts, wrong_kind_text = frozenset({TEXT}), "当てはまる要件をボタンで選ぶか、番号で入力してください。"
    title = "登録要件"
    help = (
        "この事業に登録できるのは、(a) 公的資格をお持ちの方、または (b)〜(d) の経験がある方です。"
        "当てはまるものをすべて選んで「完了」を押すと、それぞれの経験年数と内容をお聞きします。"
        f"当てはまるものがなければ「{NOT_APPLICABLE}」を押してください。"
    )
    summary_label = "登録要件"

    def answered(self, draft: dict[str, Any]) -> bool:
        """Chosen, and concluded with a requirement met (none met was refused: choose again).

        While a chosen requirement still lacks its years or detail, its
        sub-question (listed after this one) is the one to ask.
        """
        if not isinstance(draft.get("requirements"), list):
            return False
        return open_requirement(draft) is not None or bool(draft.get("requirements_met"))

    def summary(self, draft: dict[str, Any]) -> str:
        """The requirements met: 「(a) 公的資格、(b) 12年」."""
        years = {r.get("key"): r.get("years") for r in draft.get("requirements") or [] if isinstance(r, dict)}
        return "、".join(
            "(a) 公的資格" if key == "a" else f"({key}) {years.get(key, '')}年" for key in draft.get("requirements_met") or []
        ) or "—"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
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
        line, error = take_note(s)
        if line is not None:
            return [msg.text(line, choices + [NOT_APPLICABLE, "完了"])]
        return [msg.text(with_error(error, body), choices + [NOT_APPLICABLE, "完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = draft_of(ctx)
        options = experience_requirements(ctx)
        keys = [r.key for r in options]
        chosen = selecting(draft, self.name, [e["key"] for e in _entries(draft)])
        if is_done(inp):
            if not chosen and not _qualification_met(ctx, draft):
                return refused(s, ctx, self.name, f"当てはまる要件を選んでから「完了」を押してください。どれにも当てはまらない場合は「{NOT_APPLICABLE}」を押してください。")
            return self._finish(s, ctx, chosen)
        if inp.text in (NOT_APPLICABLE, "なし", "該当しない", str(len(options) + 1)):
            return self._finish(s, ctx, [])
        # (b), （ｂ）, b, B, a number or words of the label all name a requirement.
        names = [f"{_tag(r)} {r.label}" for r in options]
        text = re.sub(r"\(([a-zA-Z])\)", r"\1", inp.text)
        tokens = [t for t in SPLIT_RE.split(text) if t]
        if tokens and all(t.lower() in keys for t in tokens):
            picked = [t.lower() for t in tokens]
        else:
            found, unknown = pick(inp.text, names)
            if unknown or not found:
                return refused(s, ctx, self.name, not_a_choice(unknown or [inp.text], "登録要件"))
            picked = [keys[names.index(n)] for n in found]
        chosen = toggle(chosen, picked, keys)
        keep_selecting(ctx, self.name, chosen)
        return tapped(s, selected_line(shown_list([f"({k})" for k in chosen]), len(chosen)))

    def _finish(self, s: Session, ctx: Context, chosen: list[str]) -> Outcome:
        expert, draft = draft_of(ctx)
        old = {e["key"]: e for e in _entries(draft)}
        entries = [old.get(k, {"key": k}) for k in chosen]
        repo.update_draft(expert, requirements=entries, selecting=None, requirements_met=None)
        if not entries:
            return conclude_requirements(s, ctx)
        s.data["req_at"] = ["years", entries[0]["key"]]
        return Advance(trigger="years")


YEARS_RE = re.compile(r"(?:約|およそ)?([0-9]{1,3})(?:年間?|年以上)?(?:以上|くらい|ぐらい|程度|ほど)?")


class RequirementYears(Question):
    name = "requirement_years"
    title = "登録要件の経験年数"
    help = "選んだ要件について、その仕事に従事した年数を数字で入力してください（例：12）。必要な年数に満たない場合、その要件は対象外になります。"

    def answered(self, draft: dict[str, Any]) -> bool:
        entry = open_requirement(draft)
        return entry is None or "years" in entry

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        entry = req_target(s, draft, "years")
        r = requirement(ctx, entry["key"]) if entry else None
        if entry is None or r is None:  # reached with nothing chosen (e.g. 戻る after a lost session)
            return Requirements().ask(s, ctx, again)
        return [msg.text(
            f"{_tag(r)} {r.label}\nこの経験の年数を数字で入力してください（例：12）。{r.min_years}年以上で要件を満たします。"
            + kept("回答", f"{entry['years']}年" if "years" in entry else None)
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        expert, draft = draft_of(ctx)
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


class RequirementDetail(Question):
    name = "requirement_detail"
    title = "登録要件の経験内容"
    help = f"その経験の内容を一行（{DETAIL_MIN}〜{DETAIL_MAX}文字）で書いてください。支援機関と事務局が審査に使います（例：製造業の経営者として生産管理と人材育成を担当）。"

    def answered(self, draft: dict[str, Any]) -> bool:
        entry = open_requirement(draft)
        return entry is None or "detail" in entry

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        entry = req_target(s, draft, "detail")
        r = requirement(ctx, entry["key"]) if entry else None
        if entry is None or r is None:
            return Requirements().ask(s, ctx, again)
        return [msg.text(
            f"{_tag(r)} {r.label}（{entry.get('years', '?')}年）\nどのような経験か、一行で入力してください"
            "（例：製造業の経営者として生産管理と人材育成を担当）。"
            + kept("回答", entry.get("detail"))
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        expert, draft = draft_of(ctx)
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
