"""The pure rule engine: ``(state, event) -> (new state, outputs)``.

No Kafka, no database, no clock: the caller passes ``processed_at`` and the
funnels. The state is a plain JSON-able value, so the faust table can store it
as it is.

CONTRACT SKELETON (lead): ``ContactState``, ``Evaluation`` and ``evaluate`` are
what the faust app builds on; the body is the thin slice (forward-only, event
name match) until the full engine lands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from funnel_shared.events import ContactEvent, StageBlocked, StageChanged, stage_change_id
from pydantic import BaseModel, Field

from funnel_stage_engine.definitions import Funnel

__all__ = ["ContactState", "Evaluation", "FunnelState", "evaluate"]


class FunnelState(BaseModel):
    current: str
    furthest: str


class ContactState(BaseModel):
    """Everything the engine remembers about one contact, across all funnels."""

    funnels: dict[str, FunnelState] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContactState:
        return cls.model_validate(data or {})


@dataclass
class Evaluation:
    state: ContactState
    outputs: list[StageChanged | StageBlocked] = field(default_factory=list)


def evaluate(
    state: ContactState,
    event: ContactEvent,
    *,
    funnels: Sequence[Funnel],
    processed_at: datetime,
) -> Evaluation:
    """Evaluate ``event`` against every funnel. Does not mutate ``state``."""
    new_state = state.model_copy(deep=True)
    outputs: list[StageChanged | StageBlocked] = []
    contact_id = event.contact_key
    for funnel in funnels:
        order = funnel.definition.stages
        for rule in funnel.definition.rules:
            names = [rule.event] if isinstance(rule.event, str) else (rule.event or [])
            if event.type != rule.type or (names and event.event not in names):
                continue
            position = new_state.funnels.get(funnel.name)
            if position is not None and order.index(position.current) >= order.index(rule.to):
                continue
            furthest = rule.to
            if position is not None and order.index(position.furthest) > order.index(furthest):
                furthest = position.furthest
            new_state.funnels[funnel.name] = FunnelState(current=rule.to, furthest=furthest)
            outputs.append(
                StageChanged(
                    id=stage_change_id(
                        funnel=funnel.name,
                        contact_id=contact_id,
                        message_id=event.message_id,
                        to_stage=rule.to,
                    ),
                    funnel=funnel.name,
                    funnel_version=funnel.version,
                    contact_id=contact_id,
                    from_stage=position.current if position else None,
                    to_stage=rule.to,
                    furthest_stage=furthest,
                    rule_id=rule.id,
                    cause_message_id=event.message_id,
                    event_time=event.timestamp,
                    processed_at=processed_at,
                    traits={**(event.context.get("traits") or {}), **event.traits},
                )
            )
    return Evaluation(state=new_state, outputs=outputs)
