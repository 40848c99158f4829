"""A stored record's status machine: declared moves, guards, every move audited.

The expert's lifecycle (``domain.lifecycle``) set the pattern; this
module gives the same shape to every other record with a ``status`` column
(see ``domain.statuses``): one ``transitions.Machine`` built once at
import with ``model=None`` and ``auto_transitions=False``, fired per move on
a throwaway :class:`Move` (nothing is ever attached to the shared machine,
so nothing leaks and threads cannot collide — see ``engine.Flow.fire``).

A move the machine does not allow, or whose guard fails, is refused *and*
audited (``status.refused``), never silently applied; a legal one is written
and audited (``status.change``) — the same rows the expert's lifecycle
writes, with the record as target (``dispatch:12``, ``report:3``…).

The status and the move's other columns are written in one conditional
``UPDATE … WHERE status = <the status the move was decided on>``: two
people acting at once (a reviewer cancelling while the expert accepts)
cannot both win; the one who lost is refused like any illegal move.

A machine may keep a column derived from the statuses (``after_move``: run after
every move it writes, in the same transaction), so no flow has to remember it:
the report machine keeps ``Dispatch.report_due_at`` (``domain.statuses``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from transitions import Machine, MachineError

from storage import repo
from storage.models import BaseModel, utcnow


class IllegalTransition(Exception):
    """The move is not allowed from the current status (or its guard failed)."""


@dataclass
class Move:
    """The throwaway model one move fires on (plain object, never attached to a machine).

    Guards read the record, the reason and the columns the move will write.
    """

    record: Any
    reason: str | None
    changes: dict[str, Any] = field(default_factory=dict)
    state: str = ""


Guard = Callable[[Move], bool]
AfterMove = Callable[[Any, str, str], None]  # (record, before, after): what follows from a move


def has_reason(move: Move) -> bool:
    """A return, decline or cancel reaches someone with its reason: never without one."""
    return bool(move.reason and move.reason.strip())


class StatusMachine:
    """The declared moves of one model's ``status`` column, built once."""

    def __init__(self, kind: str, title: str, model: type[BaseModel], states: Sequence[str],
                 transitions: list[dict[str, Any]], initial: str, after_move: AfterMove | None = None) -> None:
        self.kind = kind  # the audit target's prefix: "dispatch" → "dispatch:12"
        self.title = title  # for the diagram
        self.model = model
        self.states = list(states)
        self.transitions = transitions
        self.initial = initial
        self.after_move = after_move
        self.machine = Machine(model=None, states=self.states, transitions=transitions, initial=initial,
                               auto_transitions=False)

    def target(self, record: Any) -> str:
        return f"{self.kind}:{record.id}"

    def allowed(self, record: Any, trigger: str) -> bool:
        """Whether the machine has ``trigger`` from the record's status (guards aside)."""
        return bool(self.machine.get_transitions(trigger=trigger, source=record.status))

    def decide(self, status: str, trigger: str, record: Any = None, reason: str | None = None,
               changes: dict[str, Any] | None = None) -> str | None:
        """Where ``trigger`` leads from ``status`` (guards included), or None if it may not fire."""
        move = Move(record=record, reason=reason, changes=dict(changes or {}), state=status)
        event = self.machine.events.get(trigger)
        try:
            # The machine's own Event runs on the throwaway model (never attached).
            moved = bool(event and event.trigger(move, move))
        except (MachineError, ValueError):  # ValueError: a stored status the machine does not know
            moved = False
        return move.state if moved else None

    def move(self, record: Any, trigger: str, *, actor: str, reason: str | None = None,
             event_id: str | None = None, changes: dict[str, Any] | None = None) -> tuple[str, str]:
        """Apply ``trigger`` to ``record`` and write ``changes`` with it; returns (before, after).

        Raises IllegalTransition (after auditing the refusal) when the machine
        does not allow it, or when the stored status moved on meanwhile. The
        record's ``updated_at``, if it has one, is stamped unless ``changes`` sets it.
        """
        before = record.status
        after = self.decide(before, trigger, record, reason, changes)
        if after is None:
            self._refuse(record, before, trigger, actor, reason, event_id)
        values = dict(changes or {})
        if "updated_at" in self.model._meta.fields and "updated_at" not in values:
            values["updated_at"] = utcnow()
        values["status"] = after
        fields = self.model._meta.fields
        written = (self.model.update({fields[name]: value for name, value in values.items()})
                   .where((self.model.id == record.id) & (self.model.status == before)).execute())  # type: ignore[attr-defined]  # models with a status machine have these columns
        if not written:
            stored = self.model.select(self.model.status).where(self.model.id == record.id).scalar()  # type: ignore[attr-defined]  # as above
            record.status = stored if stored is not None else before
            self._refuse(record, record.status, trigger, actor, reason, event_id)
        for name, value in values.items():
            setattr(record, name, value)
        record._dirty.difference_update(values)  # written above: a later save() need not repeat them
        if self.after_move is not None:
            self.after_move(record, before, after)
        repo.audit(actor, "status.change", target=self.target(record), before=before, after=after, reason=reason,
                   event_id=event_id)
        return before, after

    def _refuse(self, record: Any, status: str, trigger: str, actor: str, reason: str | None,
                event_id: str | None) -> NoReturn:
        repo.audit(actor, "status.refused", target=self.target(record), before=status, after=trigger, reason=reason,
                   event_id=event_id)
        raise IllegalTransition(f"{self.kind}: {trigger} is not allowed from {status}")
