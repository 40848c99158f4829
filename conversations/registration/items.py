"""The application's questions in the order the form asks them: the one place that order is written.

``form.py`` puts the entry (terms, institution code) before them and the
summary after them; everything else that follows the order is derived
here from what each question declares (``parts.Question``): the rows of
the summary (``summary_rows``, which reviewers and change requests read
too), where each 修正 jumps (``EDITABLE``) and the words of a typed
「修正 …」 (``LABEL_TO_STEP``). Where a lost session resumes follows the
same list (``ProfileFlow.resume_state``).

It sits below the summary, submission and change requests, which all read
the rows, and above the modules that ask the questions.
"""
from __future__ import annotations

from typing import Any

from conversations.registration import account, bank, contact, identity, photos, requirements, scope
from conversations.registration.parts import Question, joined

QUESTIONS: list[Question] = [
    identity.Name(), identity.Kana(), identity.Birthdate(),
    contact.Phone(), contact.Email(), contact.Postal(), contact.Address(),
    requirements.Qualifications(), requirements.QualificationOther(),
    requirements.Requirements(), requirements.RequirementYears(), requirements.RequirementDetail(),
    scope.Expertise(), scope.Areas(),
    bank.Bank(), bank.BankConfirm(), bank.Yucho(), bank.Branch(), bank.BranchConfirm(),
    account.AccountType(), account.AccountNumber(), account.Holder(),
    photos.FacePhoto(), photos.IdPhoto(), photos.QualificationPhoto(), photos.PassbookPhoto(),
]

# The first question of each item: its row on the summary, where its 修正 jumps.
ITEMS = [q for q in QUESTIONS if q.summary_label]
EDITABLE = [q.name for q in ITEMS]
LABEL_TO_STEP = {q.summary_label: q.name for q in ITEMS}
BLANK_OK = {q.summary_label for q in ITEMS if q.blank_ok}  # may read 「—」 at 送信
PHOTOS = [q for q in QUESTIONS if isinstance(q, photos.Photo)]

Row = tuple[str, str, str | None]  # (label, value, step 修正 jumps to; None: no 修正)


def item_rows(draft: dict[str, Any]) -> list[Row]:
    """One row per item of this draft, in the order asked."""
    rows: list[Row] = []
    for q in ITEMS:
        value = q.summary(draft)
        if value is not None:
            rows.append((q.summary_label, value, q.name))
    return rows


def summary_rows(draft: dict[str, Any]) -> list[Row]:
    """Every answer of the form: the institution the application goes to (chosen
    at the entry, never fixed from the summary), then the items."""
    return [("支援機関", joined(draft.get("institution_name")), None), *item_rows(draft)]
