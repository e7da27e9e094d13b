"""Decode records from ``funnel.stage-changed.v1`` into what follow-up rules match on.

The topic carries several kinds of value, told apart by ``kind``. Each kind
the notifier can act on has a decoder that turns it into a ``Trigger``:
``stage_changed`` becomes an ``entered`` trigger, ``stage_stalled`` a
``stalled`` one (in the stage it stalled in) and ``contact_merged`` a
``merged`` one (no stage: a merge concerns the whole funnel).

Only stage changes move a contact's latest stage (what ``unless: moved_on``
is judged against). A merge or a stall that moves the contact is followed on
the topic by its own ``stage_changed`` record (``causeKind`` merge or stall),
so the stall and merge triggers carry no ``change`` and move nothing twice.

- invalid JSON, or a known kind that does not validate: ``Invalid`` (dead-lettered);
- a known kind no rule type acts on (``stage_blocked``): ``Ignored``;
- a kind this version does not know: ``Ignored`` too, with a log line, because
  additions to the contract are backward compatible.

A follow-up is due at the event time plus the rule's ``after:``; a sum past the
last time Python (and so the notifier) can hold, year 9999, makes the record
unplannable: ``plan_followups`` raises ``DueTimeOutOfRange`` and the consumer
dead-letters it like any other bad record.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from funnel_shared.conditions import all_hold
from funnel_shared.events import (
    ContactMerged,
    StageBlocked,
    StageChanged,
    StageStalled,
    TotalChanged,
)
from pydantic import BaseModel, ValidationError

from funnel_notifier.domain.rules import LoadedRule, SourceCondition, WhenCondition

__all__ = [
    "Decoded",
    "DueTimeOutOfRange",
    "Ignored",
    "Invalid",
    "PlannedFollowUp",
    "Trigger",
    "decode",
    "followup_id",
    "plan_followups",
]

TriggerType = Literal["entered", "stalled", "merged"]


@dataclass(frozen=True)
class Trigger:
    """Something a follow-up rule can match: who, which funnel and stage, and when."""

    type: TriggerType
    source_id: str  # The record's own id: half of the follow-up's unique key.
    funnel: str
    contact_id: str
    stage: str | None
    event_time: datetime
    traits: dict[str, Any]
    record: dict[str, Any]  # The record as received, for webhook bodies and templates.
    change: StageChanged | None = None  # Set for ``entered``: updates "latest stage".


@dataclass(frozen=True)
class Decoded:
    trigger: Trigger


@dataclass(frozen=True)
class Ignored:
    kind: str
    known: bool  # False: a kind this version does not know yet.


@dataclass(frozen=True)
class Invalid:
    errors: list[str] = field(default_factory=list)


def _entered(change: BaseModel) -> Trigger:
    assert isinstance(change, StageChanged)
    return Trigger(
        type="entered",
        source_id=change.id,
        funnel=change.funnel,
        contact_id=change.contact_id,
        stage=change.to_stage,
        event_time=change.event_time,
        traits=dict(change.traits),
        record=change.model_dump(mode="json"),
        change=change,
    )


def _stalled(stall: BaseModel) -> Trigger:
    assert isinstance(stall, StageStalled)
    return Trigger(
        type="stalled",
        source_id=stall.id,
        funnel=stall.funnel,
        contact_id=stall.contact_id,
        stage=stall.stage,
        event_time=stall.event_time,  # The deadline that passed.
        traits=dict(stall.traits),
        record=stall.model_dump(mode="json"),
    )


def _merged(merged: BaseModel) -> Trigger:
    assert isinstance(merged, ContactMerged)
    return Trigger(
        type="merged",
        source_id=merged.id,
        funnel=merged.funnel,
        contact_id=merged.contact_id,  # The surviving, identified contact.
        # Merged rules have no stage (rules.py refuses one), so neither does the
        # follow-up; the stages after the merge are in the record.
        stage=None,
        event_time=merged.event_time,
        traits=dict(merged.traits),
        record=merged.model_dump(mode="json"),
    )


# kind -> (model, how it becomes a trigger; None = known, but nothing acts on it).
_KINDS: dict[str, tuple[type[BaseModel], Callable[[BaseModel], Trigger] | None]] = {
    "stage_changed": (StageChanged, _entered),
    "stage_stalled": (StageStalled, _stalled),
    "contact_merged": (ContactMerged, _merged),
    "stage_blocked": (StageBlocked, None),
    # Running totals are for the read side; a total reaching a threshold comes as a change.
    "total_changed": (TotalChanged, None),
}


def decode(value: bytes | None) -> Decoded | Ignored | Invalid:
    try:
        data = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Invalid([f"not valid JSON: {exc}"])
    if not isinstance(data, dict):
        return Invalid([f"expected a JSON object, got {type(data).__name__}"])
    # Records from before the contract grew ``kind`` were all stage changes.
    kind = data.get("kind", "stage_changed")
    if not isinstance(kind, str):
        return Invalid(["kind: expected a string"])
    if kind not in _KINDS:
        return Ignored(kind, known=False)
    model, to_trigger = _KINDS[kind]
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        return Invalid(
            [f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors()]
        )
    if to_trigger is None:
        return Ignored(kind, known=True)
    return Decoded(to_trigger(parsed))


def _from_source(condition: SourceCondition, trigger: Trigger) -> bool:
    """Whether the trigger's causing event came from a source the condition names.

    Only a stage change caused by an event has one; a merge, a stall or a record
    from before ``causeSourceKind`` does not, and so never satisfies a condition.
    """
    change = trigger.change
    if change is None or change.cause_kind != "event":
        return False
    return condition.holds(change.cause_source, change.cause_source_kind)


def _in_segment(condition: WhenCondition, trigger: Trigger) -> bool:
    """Whether the contact's traits and the triggering record satisfy ``when``."""
    return all_hold(condition.traits, trigger.traits) and all_hold(condition.change, trigger.record)


_FOLLOWUP_NAMESPACE = uuid.UUID("5d0e7a61-2f4b-4c8e-9a3d-1e6b8c7f2a90")


def followup_id(*, source_id: str, rule_id: str) -> str:
    """Deterministic: a redelivered record maps to the same follow-up."""
    return str(uuid.uuid5(_FOLLOWUP_NAMESPACE, f"{source_id}\x1f{rule_id}"))


@dataclass(frozen=True)
class PlannedFollowUp:
    id: str
    rule: LoadedRule
    trigger: Trigger
    due_at: datetime


class DueTimeOutOfRange(ValueError):
    """A rule's delay added to the record's event time is past the year 9999."""

    def __init__(self, *, rule_id: str, event_time: datetime, after: timedelta) -> None:
        super().__init__(
            f"follow-up due time out of range: rule {rule_id}: event time"
            f" {event_time.isoformat()} + after {after} is past the year 9999"
        )


def plan_followups(trigger: Trigger, rules: list[LoadedRule]) -> list[PlannedFollowUp]:
    """The follow-ups a trigger asks for. Due at event time plus the rule's delay.

    Raises ``DueTimeOutOfRange`` when that sum is past the year 9999."""
    planned = []
    for loaded in rules:
        rule = loaded.rule
        if loaded.funnel != trigger.funnel or rule.trigger != trigger.type:
            continue
        if rule.stage is not None and rule.stage != trigger.stage:
            continue
        if rule.source is not None and not _from_source(rule.source, trigger):
            continue
        if rule.when is not None and not _in_segment(rule.when, trigger):
            continue
        after = rule.after or timedelta(0)
        try:
            due_at = trigger.event_time + after
        except OverflowError:
            raise DueTimeOutOfRange(
                rule_id=rule.id, event_time=trigger.event_time, after=after
            ) from None
        planned.append(
            PlannedFollowUp(
                id=followup_id(source_id=trigger.source_id, rule_id=rule.id),
                rule=loaded,
                trigger=trigger,
                due_at=due_at,
            )
        )
    return planned
