"""The status machines of dispatches, reports and change requests (``domain.statuses``):
the moves the flows make are the only moves there are; each is audited, and anything else —
an unknown move, a failed guard, a record that moved on meanwhile — is refused and audited."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from domain import lifecycle
from domain.status_machine import IllegalTransition, StatusMachine
from domain.statuses import CHANGE, DISPATCH, DISPATCH_LABELS, REPORT, REPORT_LABELS
from storage import repo
from storage.models import AuditLog, Business, ChangeRequest, Dispatch, Expert, Report
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    tap,
)

JUNE_10_AT_10 = datetime(2026, 6, 10, 1, 0)  # 10:00 in Tokyo, stored as UTC
JUNE_10_AT_12 = datetime(2026, 6, 10, 3, 0)  # a check-out's time
JUNE_11_AT_14 = datetime(2026, 6, 11, 5, 0)
FEE = {"minutes": 130, "gross_yen": 10_560, "withholding_yen": 0, "travel_yen": 0, "net_yen": 10_560,
       "fee_month": "2026-06"}


# --- records, written directly (the flows that make them are tested elsewhere) ----------------------


@pytest.fixture
def expert(database) -> Expert:
    inst = repo.create_institution("状態商工会", "よろず")
    return Expert.create(user=repo.ensure_user(EXPERT), status="commissioned", institution=inst, draft={}, profile={})


def new_dispatch(expert: Expert, status: str = "requested") -> Dispatch:
    business = Business.create(institution=expert.institution, name="株式会社状態", latitude=BUSINESS_LAT,
                               longitude=BUSINESS_LNG)
    return Dispatch.create(business=business, institution=expert.institution, expert=expert,
                           requested_by=repo.ensure_user(REVIEWER), theme="経営戦略", scheduled_at=JUNE_10_AT_10,
                           status=status)


def new_record(machine: StatusMachine, expert: Expert) -> Any:
    """A fresh record in the machine's initial status."""
    if machine is DISPATCH:
        return new_dispatch(expert)
    if machine is REPORT:
        return Report.create(dispatch=new_dispatch(expert, "completed"), status=REPORT.initial, draft={})
    return ChangeRequest.create(expert=expert, changed=[["電話番号", "090", "03"]])


Step = tuple[str, str | None, dict[str, Any]]  # trigger, reason, columns written with it


def run(machine: StatusMachine, record: Any, steps: list[Step], actor: str = "test") -> None:
    for trigger, reason, changes in steps:
        machine.move(record, trigger, actor=actor, reason=reason, changes=changes)


def audited(action: str, record: Any, machine: StatusMachine) -> list[tuple[str, str, str | None]]:
    rows = AuditLog.select().where((AuditLog.action == action) & (AuditLog.target == machine.target(record)))
    return [(a.before, a.after, a.reason) for a in rows.order_by(AuditLog.id)]


# --- the moves ------------------------------------------------------------------------------------------


def declared(machine: StatusMachine) -> set[tuple[str, str, str]]:
    return {(t["trigger"], source, t["dest"]) for t in machine.transitions
            for source in ([t["source"]] if isinstance(t["source"], str) else t["source"])}


def test_the_declared_moves_are_the_moves_the_flows_make():
    assert declared(DISPATCH) == {
        ("accept", "requested", "accepted"), ("decline", "requested", "declined"),
        ("cancel_over_limit", "requested", "cancelled"),
        ("cancel", "requested", "cancelled"), ("cancel", "accepted", "cancelled"),
        ("reschedule", "requested", "requested"), ("reschedule", "accepted", "accepted"),
        ("check_in", "accepted", "checked_in"), ("check_out", "checked_in", "completed")}
    assert declared(REPORT) == {("submit", "draft", "submitted"), ("submit", "returned", "submitted"),
                                ("accept", "submitted", "accepted"), ("return", "submitted", "returned")}
    assert declared(CHANGE) == {("approve", "pending", "approved"), ("return", "pending", "returned")}
    # Every status the bot shows has its state, and nothing else.
    assert set(DISPATCH.states) == set(DISPATCH_LABELS) and set(REPORT.states) == set(REPORT_LABELS)
    assert IllegalTransition is lifecycle.IllegalTransition  # one error to catch, whichever record


@pytest.mark.parametrize("steps,path", [
    ([("accept", None, {}), ("check_in", None, {}), ("check_out", None, {"report_due_at": JUNE_10_AT_12})],
     ["accepted", "checked_in", "completed"]),
    ([("decline", "その日は別の支援があります", {"reason": "その日は別の支援があります"})], ["declined"]),
    ([("cancel_over_limit", "無料派遣の上限", {"reason": "無料派遣の上限"})], ["cancelled"]),
    ([("cancel", "事業者の都合", {"reason": "事業者の都合"})], ["cancelled"]),
    ([("accept", None, {}), ("cancel", "事業者の都合", {"reason": "事業者の都合"})], ["accepted", "cancelled"]),
    ([("reschedule", None, {"scheduled_at": JUNE_11_AT_14})], ["requested"]),
    ([("accept", None, {}), ("reschedule", None, {"scheduled_at": JUNE_11_AT_14})], ["accepted", "accepted"]),
])
def test_dispatch_moves_are_written_and_audited(expert, steps, path):
    d = new_dispatch(expert)
    stamped = d.updated_at
    run(DISPATCH, d, steps, actor=REVIEWER)
    stored = Dispatch.get_by_id(d.id)
    assert d.status == stored.status == path[-1] and stored.updated_at > stamped
    for _, _, changes in steps:  # the move's own columns are written with it
        assert all(getattr(stored, name) == value for name, value in changes.items())
    assert audited("status.change", d, DISPATCH) == [
        (before, after, reason) for before, after, (_, reason, _) in zip(["requested", *path], path, steps)]
    assert {a.actor for a in AuditLog.select()} == {REVIEWER} and not audited("status.refused", d, DISPATCH)


def test_report_returned_fixed_and_accepted(expert):
    report = new_record(REPORT, expert)
    run(REPORT, report, [("submit", None, FEE), ("return", "交通費の経路を書いてください", {"reason": "交通費の経路を書いてください"}),
                         ("submit", None, FEE), ("accept", None, {"accepted_by": REVIEWER})])
    stored = Report.get_by_id(report.id)
    assert (stored.status, stored.net_yen, stored.fee_month, stored.reason, stored.accepted_by) == (
        "accepted", 10_560, "2026-06", "交通費の経路を書いてください", REVIEWER)
    assert audited("status.change", report, REPORT) == [
        ("draft", "submitted", None), ("submitted", "returned", "交通費の経路を書いてください"),
        ("returned", "submitted", None), ("submitted", "accepted", None)]


@pytest.mark.parametrize("trigger,reason,final", [("approve", None, "approved"), ("return", "本人確認が必要です", "returned")])
def test_change_request_approved_or_returned(expert, trigger, reason, final):
    change = new_record(CHANGE, expert)
    run(CHANGE, change, [(trigger, reason, {"decided_by": REVIEWER})])
    assert ChangeRequest.get_by_id(change.id).status == final
    assert audited("status.change", change, CHANGE) == [("pending", final, reason)]


# --- what is refused ------------------------------------------------------------------------------------


REFUSED = [
    # (machine, steps first, the refused trigger, its reason, its columns)
    (DISPATCH, [("cancel", "延期", {"reason": "延期"})], "check_in", None, {}),  # checked in after cancel
    (DISPATCH, [], "check_in", None, {}),  # not accepted yet
    (DISPATCH, [("accept", None, {})], "check_out", None, {}),  # out before in
    (DISPATCH, [("accept", None, {}), ("check_in", None, {})], "reschedule", None, {"scheduled_at": JUNE_11_AT_14}),
    (DISPATCH, [("accept", None, {}), ("check_in", None, {})], "cancel", "遅すぎる取消", {"reason": "遅すぎる取消"}),
    (DISPATCH, [("decline", "都合", {"reason": "都合"})], "accept", None, {}),  # answered already
    (DISPATCH, [], "decline", "   ", {}),  # guard: a decline tells its reason
    (DISPATCH, [], "cancel", None, {}),  # guard: so does a cancel
    (DISPATCH, [], "reschedule", None, {}),  # guard: a reschedule has a new date
    (DISPATCH, [("accept", None, {}), ("check_in", None, {})], "check_out", None, {}),  # guard: a check-out has its time
    (DISPATCH, [], "complete", None, {}),  # no such move
    (REPORT, [("submit", None, FEE), ("accept", None, {})], "accept", None, {}),  # accepted twice
    (REPORT, [("submit", None, FEE), ("accept", None, {})], "return", "今さら", {"reason": "今さら"}),
    (REPORT, [("submit", None, FEE)], "submit", None, FEE),  # sent twice
    (REPORT, [], "accept", None, {}),  # not sent yet
    (REPORT, [], "submit", None, {}),  # guard: sent with its fee
    (REPORT, [("submit", None, FEE)], "return", "", {}),  # guard: a return tells its reason
    (CHANGE, [("return", "確認中", {"reason": "確認中"})], "approve", None, {}),
    (CHANGE, [("approve", None, {})], "approve", None, {}),
    (CHANGE, [], "return", None, {}),
]


@pytest.mark.parametrize("machine,steps,trigger,reason,changes", REFUSED,
                         ids=[f"{m.kind}-{'-'.join(s[0] for s in steps) or 'new'}-then-{t}" for m, steps, t, _, _ in REFUSED])
def test_illegal_moves_are_refused_and_audited(expert, machine, steps, trigger, reason, changes):
    record = new_record(machine, expert)
    run(machine, record, steps)
    before, moves = record.status, len(audited("status.change", record, machine))
    stored = type(record).get_by_id(record.id).__data__
    with pytest.raises(IllegalTransition):
        machine.move(record, trigger, actor="someone", reason=reason, changes=changes)
    assert record.status == before and type(record).get_by_id(record.id).__data__ == stored, "nothing written"
    refused = AuditLog.get(AuditLog.action == "status.refused")
    assert (refused.actor, refused.target, refused.before, refused.after) == (
        "someone", machine.target(record), before, trigger)
    assert len(audited("status.change", record, machine)) == moves


def test_a_record_that_moved_on_meanwhile_is_refused(expert):
    """Two people act on the same dispatch at once: the move decided on a stale status loses."""
    mine = new_dispatch(expert)
    theirs = Dispatch.get_by_id(mine.id)
    DISPATCH.move(theirs, "cancel", actor=REVIEWER, reason="事業者の都合", changes={"reason": "事業者の都合"})
    with pytest.raises(IllegalTransition):
        DISPATCH.move(mine, "accept", actor=EXPERT)  # legal from what it read ("requested"), not from what is stored
    assert mine.status == Dispatch.get_by_id(mine.id).status == "cancelled" and not DISPATCH.allowed(mine, "accept")
    assert audited("status.refused", mine, DISPATCH) == [("cancelled", "accept", None)]
    assert [after for _, after, _ in audited("status.change", mine, DISPATCH)] == ["cancelled"]


# --- through the webhook ----------------------------------------------------------------------------------


def status_rows(target: str, action: str = "status.change") -> list[AuditLog]:
    return list(AuditLog.select().where((AuditLog.action == action) & (AuditLog.target == target)).order_by(AuditLog.id))


def test_accept_then_cancel_through_line_audits_each_move(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "状態商工会", REVIEWER)
    d = dispatch_for(commissioned_expert(inst), REVIEWER, status="requested")
    assert "受諾しました" in tap(bot_app, EXPERT, f"a=dsp_accept&id={d.id}")[0]
    tap(bot_app, REVIEWER, f"a=dsp_cancel&id={d.id}")
    bot_app.text(REVIEWER, "事業者の都合により延期")
    assert "取り消されました" in tap(bot_app, REVIEWER, "c=yes")[0]
    rows = status_rows(f"dispatch:{d.id}")
    assert [(r.actor, r.before, r.after, r.reason) for r in rows] == [
        (EXPERT, "requested", "accepted", None), (REVIEWER, "accepted", "cancelled", "事業者の都合により延期")]
    assert all(r.event_id for r in rows), "each move names the LINE event that caused it"
    assert "は取り消されています" in tap(bot_app, EXPERT, f"a=dsp_accept&id={d.id}")[0]  # the old card: its present status
    assert len(status_rows(f"dispatch:{d.id}")) == 2


def test_a_report_accepted_twice_through_line_is_refused_and_audited(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "状態商工会", REVIEWER)
    d = dispatch_for(commissioned_expert(inst), REVIEWER, when=JUNE_10_AT_10, status="completed")
    report = Report.create(dispatch=d, status="submitted", draft={"consultation": "販路開拓の相談"}, **FEE)
    assert "受理します" in tap(bot_app, REVIEWER, f"a=rep_accept&id={report.id}")[0]  # asks to confirm…
    tap(bot_app, SEC, f"a=rep_accept&id={report.id}")  # …while the secretariat accepts it
    assert "受理しました" in tap(bot_app, SEC, "c=yes")[0]
    texts = tap(bot_app, REVIEWER, "c=yes")
    assert "受理済み" in texts[0] and "受理できません" in texts[0]
    assert Report.get_by_id(report.id).accepted_by == SEC
    assert [(r.actor, r.before, r.after) for r in status_rows(f"report:{report.id}")] == [(SEC, "submitted", "accepted")]
    refused = status_rows(f"report:{report.id}", "status.refused")
    assert [(r.actor, r.before, r.after) for r in refused] == [(REVIEWER, "accepted", "accept")]
