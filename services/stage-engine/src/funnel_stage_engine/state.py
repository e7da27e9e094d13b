"""What the engine remembers per contact: a plain JSON-able value for the faust table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

__all__ = ["ContactState", "FunnelState"]


class FunnelState(BaseModel):
    """Where a contact stands in one funnel."""

    current: str
    furthest: str


class ContactState(BaseModel):
    """Everything the engine remembers about one contact, across all funnels.

    Bounded: ``counters`` keep at most ``at_least`` times per counted rule and
    ``seen_message_ids`` at most the dedupe window.
    """

    funnels: dict[str, FunnelState] = Field(default_factory=dict)
    counters: dict[str, dict[str, list[AwareDatetime]]] = Field(
        default_factory=dict,
        description="funnel -> rule id -> recent matching event times, for counted rules.",
    )
    traits: dict[str, Any] = Field(default_factory=dict, description="Known contact traits.")
    seen_message_ids: list[str] = Field(
        default_factory=list, description="The most recent applied messageIds, oldest first."
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContactState:
        return cls.model_validate(data or {})
