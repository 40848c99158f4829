"""What the questions of the profile form share: the draft, ``Question`` and ``TextStep``.

The questions live in modules named for what they ask (identity, contact,
requirements, scope, bank, account, photos); ``items.py`` lists them in the
order they are asked and ``form.py`` assembles the flow. What they share:

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
* Each question says what its answer is in the draft (``Question``), so the
  order is written once: where a lost session resumes, the summary's rows
  and the 修正 words all follow the step order.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Invalid, Outcome, Step
from domain.normalize import InvalidInput
from storage import repo
from storage.models import Expert
from storage.sessions import Session


def draft_of(ctx: Context) -> tuple[Expert, dict[str, Any]]:
    """The expert (created on first use) and a copy of their draft."""
    expert = repo.ensure_expert(ctx.user)
    return expert, dict(expert.draft or {})


def save(ctx: Context, **fields: Any) -> None:
    expert, _ = draft_of(ctx)
    repo.update_draft(expert, **fields)


def kept(label: str, value: object) -> str:
    """「（現在の登録：…）」 under a question asked again, so 戻る shows what is kept."""
    return f"\n（現在の{label}：{value}）" if value not in (None, "", []) else ""


def joined(values: Any) -> str:
    """A summary value: a list as 「a、b」, nothing as 「—」."""
    if isinstance(values, (list, tuple)):
        return "、".join(str(v) for v in values) or "—"
    return str(values) if values not in (None, "") else "—"


class Question(Step):
    """One question of the profile form, and what its answer is in the draft.

    The step order is the one declaration of the form's order; these say
    what follows from it: a lost session resumes at the first question that
    ``applies`` and is not ``answered`` (``ProfileFlow.resume_state``), and
    the first question of each item carries the item's ``summary_label``:
    its row on the summary, the step 修正 jumps to, the word of a typed
    「修正 …」 (``items.py``).
    """

    answer_key = ""  # the draft key that holds the answer (default: the step's name)
    summary_label = ""  # set on the first question of an item: its row on the summary
    blank_ok = False  # that row may still read 「—」 at 送信 (保有資格: none is an answer)

    def answered(self, draft: dict[str, Any]) -> bool:
        return bool(draft.get(self.answer_key or self.name))

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        """False when this application does not ask it (ゆうちょ: no branch question)."""
        return True

    def summary(self, draft: dict[str, Any]) -> str | None:
        """The item's value on the summary (「—」 when unanswered); None: no row for this draft."""
        return joined(draft.get(self.answer_key or self.name))


class TextStep(Question):
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
        _, draft = draft_of(ctx)
        return [msg.text(self.question + kept(self.current_label, self.current(draft)))]

    def wrong_kind(self) -> str:
        return self.not_text

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        try:
            value = self.parse(inp.raw_text)
        except InvalidInput as exc:
            return Invalid(str(exc))
        fields = self.fields(ctx, value)
        save(ctx, **fields)
        return Advance([msg.text(self.saved.format(**fields))])
