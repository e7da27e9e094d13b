"""What the engine remembers per contact: a plain JSON-able value for the faust table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from funnel_stage_engine.domain.windows import SumState

__all__ = ["ContactState", "FunnelState"]


class FunnelState(BaseModel):
    """Where a contact stands in one funnel, and since when (the current stay)."""

    current: str
    furthest: str
    entered_at: AwareDatetime | None = Field(
        default=None, description="Event time of the move into the current stage."
    )
    entry_id: str | None = Field(
        default=None, description="What moved it there: a messageId, merge id or stall id."
    )
    stall_at: AwareDatetime | None = Field(
        default=None, description="When this stay stalls; None: no rule, or already stalled."
    )


class ContactState(BaseModel):
    """Everything the engine remembers about one contact, across all funnels.

    Bounded: ``counters`` keep at most ``at_least`` times per counted rule,
    ``sums`` at most ``windows.SUM_ENTRIES`` amounts per summed rule, and
    ``seen_message_ids`` at most the dedupe window.
    """

    funnels: dict[str, FunnelState] = Field(default_factory=dict)
    counters: dict[str, dict[str, list[AwareDatetime]]] = Field(
        default_factory=dict,
        description="funnel -> rule id -> recent matching event times, for counted rules.",
    )
    sums: dict[str, dict[str, SumState]] = Field(
        default_factory=dict,
        description="funnel -> rule id -> recent amounts (bounded), for summed rules.",
    )
    traits: dict[str, Any] = Field(default_factory=dict, description="Known contact traits.")
    seen_message_ids: list[str] = Field(
        default_factory=list,
        description="The most recent applied messageIds (and merge ids), oldest first.",
    )
    identified: bool = Field(
        default=False, description="This contact id has been a userId: it is never merged away."
    )
    merged_into: str | None = Field(
        default=None,
        description="This anonymous contact was merged into that userId; its events go there.",
    )
    linked: list[str] = Field(
        default_factory=list,
        description="AnonymousIds this identified contact has asked to merge (recent, bounded).",
    )
    positions: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Input stream -> offset of the last record applied to this contact (a record at or"
            " below it was applied already). Streams: 'topic:partition' for the records read,"
            " 'forward:topic:partition' for events forwarded from a merged anonymous contact."
            " Bounded by the number of input partitions."
        ),
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContactState:
        return cls.model_validate(data or {})
