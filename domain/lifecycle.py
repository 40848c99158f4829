"""The expert's lifecycle: explicit, stored, audited status changes.

    draft → pending_institution → pending_secretariat → registered
          ↖ returned (reason; fixed and resubmitted to whoever returned it)
      rejected (final, reason)       registered → conditions_agreed → commissioned
    any status but withdrawn → withdrawn (退会: the expert in LINE, or the secretariat)
    withdrawn → draft (登録 again: a new application on the same record)

One machine, built once; a status change fires the trigger's ``Event`` on
a throwaway model (nothing is attached to the shared machine). A move the machine does not allow — or whose
guard fails (a return or rejection without a reason) — is refused *and*
audited, never silently applied. Callers write the notifications the change
causes in the same transaction. Dispatches, reports and change requests
have machines of the same shape (``domain.statuses``), which raise
the same :class:`IllegalTransition`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError

from domain.status_machine import IllegalTransition as IllegalTransition  # one error for every status machine
from storage import repo
from storage.models import Expert, utcnow

STATUSES = [
    "draft",
    "pending_institution",
    "pending_secretariat",
    "returned",
    "rejected",
    "registered",
    "conditions_agreed",
    "commissioned",
    "withdrawn",
]

LABELS = {
    "draft": "入力中（未送信）",
    "pending_institution": "支援機関の審査待ち",
    "pending_secretariat": "事務局の承認待ち",
    "returned": "差し戻し（修正して再送信してください）",
    "rejected": "登録不可",
    "registered": "登録済み（委嘱条件への同意待ち）",
    "conditions_agreed": "委嘱条件に同意済み（就任承諾待ち）",
    "commissioned": "委嘱済み",
    "withdrawn": "退会済み",
}


def _has_reason(change: "StatusChange") -> bool:
    return bool(change.reason and change.reason.strip())


def _returned_by_institution(change: "StatusChange") -> bool:
    return change.expert.returned_by == "institution"


def _returned_by_secretariat(change: "StatusChange") -> bool:
    return change.expert.returned_by == "secretariat"


TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "submit", "source": "draft", "dest": "pending_institution"},
    # A fixed application goes back to whoever returned it.
    {"trigger": "submit", "source": "returned", "dest": "pending_institution", "conditions": _returned_by_institution},
    {"trigger": "submit", "source": "returned", "dest": "pending_secretariat", "conditions": _returned_by_secretariat},
    {"trigger": "institution_approve", "source": "pending_institution", "dest": "pending_secretariat"},
    {"trigger": "institution_return", "source": "pending_institution", "dest": "returned", "conditions": _has_reason},
    {"trigger": "institution_reject", "source": "pending_institution", "dest": "rejected", "conditions": _has_reason},
    {"trigger": "secretariat_approve", "source": "pending_secretariat", "dest": "registered"},
    {"trigger": "secretariat_return", "source": "pending_secretariat", "dest": "returned", "conditions": _has_reason},
    {"trigger": "secretariat_reject", "source": "pending_secretariat", "dest": "rejected", "conditions": _has_reason},
    {"trigger": "agree_conditions", "source": "registered", "dest": "conditions_agreed"},
    {"trigger": "accept_commission", "source": "conditions_agreed", "dest": "commissioned"},
    # 退会 is the expert's right at any point (asked in LINE, or handled by the secretariat).
    {"trigger": "withdraw", "source": [s for s in STATUSES if s != "withdrawn"], "dest": "withdrawn"},
    # Registering again after 退会 starts a new application, reviewed like the first.
    {"trigger": "reapply", "source": "withdrawn", "dest": "draft"},
]

MACHINE = Machine(model=None, states=STATUSES, transitions=TRANSITIONS, initial="draft", auto_transitions=False)


@dataclass
class StatusChange:
    """The model attached to the machine for one change (plain object, no slots)."""

    expert: Expert
    reason: str | None
    state: str = "draft"


def change_status(expert: Expert, trigger: str, *, actor: str, reason: str | None = None,
                  event_id: str | None = None) -> tuple[str, str]:
    """Apply ``trigger`` to the expert; returns (before, after) or raises IllegalTransition."""
    before = expert.status
    change = StatusChange(expert=expert, reason=reason, state=before)
    event = MACHINE.events.get(trigger)
    try:
        # The machine's own Event runs on a throwaway model (never attached).
        moved = bool(event and event.trigger(change, change))
    except MachineError:
        moved = False
    after = change.state
    if not moved or after == before:
        repo.audit(actor, "status.refused", target=f"expert:{expert.id}", before=before, after=trigger,
                   reason=reason, event_id=event_id)
        raise IllegalTransition(f"{trigger} is not allowed from {before}")
    expert.status = after
    expert.updated_at = utcnow()
    if trigger.endswith(("_return", "_reject")):
        expert.status_reason = reason
        if trigger.endswith("_return"):
            expert.returned_by = trigger.split("_", 1)[0]
    if trigger == "submit":
        expert.submitted_at = utcnow()
    if after == "registered":
        expert.profile = dict(expert.draft or {})  # the approved answers, now in force
    if trigger == "reapply":
        _forget_last_application(expert)
    expert.save()
    repo.audit(actor, "status.change", target=f"expert:{expert.id}", before=before, after=after, reason=reason,
               event_id=event_id)
    return before, after


def _forget_last_application(expert: Expert) -> None:
    """A new application owes nothing to the withdrawn one: its review, consent, acceptance
    and letter number are asked for again. The profile kept for accounting stays in force
    (fees of past dispatches are paid into it) until the new application is approved."""
    expert.submitted_at = expert.returned_by = expert.status_reason = None
    expert.conditions_version = expert.conditions_sha256 = expert.conditions_agreed_at = None
    expert.accepted_at = expert.accepted_event_id = expert.commission_number = None


def allowed(expert: Expert, trigger: str) -> bool:
    """Whether the machine has ``trigger`` from the expert's status (guards aside)."""
    return bool(MACHINE.get_transitions(trigger=trigger, source=expert.status))
