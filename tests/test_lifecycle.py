"""The lifecycle machine: legal moves applied and audited, illegal ones refused and audited."""
from __future__ import annotations

import pytest

from domain.lifecycle import IllegalTransition, allowed, change_status
from storage.models import AuditLog, Expert, LineUser


@pytest.fixture
def expert(database):
    user = LineUser.create(line_user_id="U" + "7" * 32)
    return Expert.create(user=user, status="draft", draft={})


def path(expert, *steps):
    for trigger, reason in steps:
        change_status(expert, trigger, actor="test", reason=reason)
    return expert.status


def test_happy_path_to_commissioned(expert):
    assert path(expert, ("submit", None), ("institution_approve", None), ("secretariat_approve", None),
                ("agree_conditions", None), ("accept_commission", None)) == "commissioned"
    changes = AuditLog.select().where(AuditLog.action == "status.change").order_by(AuditLog.id)
    assert [(a.before, a.after) for a in changes] == [
        ("draft", "pending_institution"), ("pending_institution", "pending_secretariat"),
        ("pending_secretariat", "registered"), ("registered", "conditions_agreed"),
        ("conditions_agreed", "commissioned")]


@pytest.mark.parametrize("returner,trigger,back_to", [
    ("institution", "institution_return", "pending_institution"),
    ("secretariat", "secretariat_return", "pending_secretariat"),
])
def test_fixed_application_goes_back_to_whoever_returned_it(expert, returner, trigger, back_to):
    path(expert, ("submit", None))
    if returner == "secretariat":
        path(expert, ("institution_approve", None))
    path(expert, (trigger, "住所の番地が抜けています"))
    assert (expert.status, expert.returned_by, expert.status_reason) == ("returned", returner, "住所の番地が抜けています")
    assert path(expert, ("submit", None)) == back_to


@pytest.mark.parametrize("steps,illegal", [
    ([], "secretariat_approve"),
    ([], "accept_commission"),
    ([("submit", None)], "secretariat_approve"),
    ([("submit", None)], "submit"),
    ([("submit", None), ("institution_reject", "要件を満たさない")], "submit"),
    ([("submit", None), ("institution_reject", "要件を満たさない")], "institution_approve"),
])
def test_illegal_moves_are_refused_and_audited(expert, steps, illegal):
    path(expert, *steps)
    before = expert.status
    with pytest.raises(IllegalTransition):
        change_status(expert, illegal, actor="someone")
    assert Expert.get_by_id(expert.id).status == before
    refused = AuditLog.get(AuditLog.action == "status.refused")
    assert (refused.actor, refused.before, refused.after) == ("someone", before, illegal)


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_return_and_reject_need_a_reason(expert, reason):
    path(expert, ("submit", None))
    for trigger in ("institution_return", "institution_reject"):
        with pytest.raises(IllegalTransition):
            change_status(expert, trigger, actor="r", reason=reason)
    assert expert.status == "pending_institution"


def test_allowed(expert):
    assert allowed(expert, "submit") and not allowed(expert, "secretariat_approve")
