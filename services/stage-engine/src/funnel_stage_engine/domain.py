"""Pure funnel evaluation: ``(stages, event) -> (new stages, [StageChanged])``.

No Kafka, no database, no clock: the caller passes ``processed_at``.

This is the thin slice the foundation needs: one built-in rule of the
``lifecycle`` funnel ("Signed Up" makes a contact a lead). Declarative funnel
definitions replace the hard-coded rule table in a later issue; the shape of
``evaluate`` stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from funnel_shared.events import ContactEvent, StageChanged, stage_change_id

__all__ = ["LIFECYCLE_STAGES", "FunnelPosition", "Rule", "evaluate"]

LIFECYCLE_STAGES = ("visitor", "lead", "prospect", "customer", "repeat_customer", "advocate")


@dataclass(frozen=True)
class Rule:
    id: str
    funnel: str
    event_type: str
    event_name: str
    to_stage: str


@dataclass(frozen=True)
class FunnelPosition:
    current: str
    furthest: str

    def to_json(self) -> dict[str, str]:
        return {"current": self.current, "furthest": self.furthest}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> FunnelPosition:
        return cls(current=data["current"], furthest=data["furthest"])


FUNNEL_VERSION = "builtin-1"
FUNNEL_STAGES: dict[str, tuple[str, ...]] = {"lifecycle": LIFECYCLE_STAGES}
RULES = (
    Rule(
        id="lifecycle.signed-up",
        funnel="lifecycle",
        event_type="track",
        event_name="Signed Up",
        to_stage="lead",
    ),
)

# The per-contact state as stored: funnel name -> {"current": ..., "furthest": ...}.
ContactStages = dict[str, dict[str, str]]


def evaluate(
    stages: Mapping[str, Mapping[str, str]],
    event: ContactEvent,
    *,
    processed_at: datetime,
) -> tuple[ContactStages, list[StageChanged]]:
    """Apply every matching rule, moving forward only."""
    new_stages: ContactStages = {name: dict(position) for name, position in stages.items()}
    changes: list[StageChanged] = []
    for rule in RULES:
        if not _matches(rule, event):
            continue
        order = FUNNEL_STAGES[rule.funnel]
        previous = new_stages.get(rule.funnel)
        position = FunnelPosition.from_json(previous) if previous else None
        if position is not None and order.index(position.current) >= order.index(rule.to_stage):
            continue  # Forward-only: a repeat or a step back changes nothing.
        furthest = rule.to_stage
        if position is not None and order.index(position.furthest) > order.index(furthest):
            furthest = position.furthest
        new_stages[rule.funnel] = FunnelPosition(current=rule.to_stage, furthest=furthest).to_json()
        changes.append(
            StageChanged(
                id=stage_change_id(
                    funnel=rule.funnel,
                    contact_id=event.contact_key,
                    message_id=event.message_id,
                    to_stage=rule.to_stage,
                ),
                funnel=rule.funnel,
                funnel_version=FUNNEL_VERSION,
                contact_id=event.contact_key,
                from_stage=position.current if position else None,
                to_stage=rule.to_stage,
                furthest_stage=furthest,
                rule_id=rule.id,
                cause_message_id=event.message_id,
                event_time=event.timestamp,
                processed_at=processed_at,
                traits=_traits(event),
            )
        )
    return new_stages, changes


def _matches(rule: Rule, event: ContactEvent) -> bool:
    return event.type == rule.event_type and event.event == rule.event_name


def _traits(event: ContactEvent) -> dict[str, Any]:
    traits = dict(event.context.get("traits") or {})
    traits.update(event.traits)
    return traits
