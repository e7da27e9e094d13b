"""Event contracts: the Segment messages we accept and the records we publish.

One module per topic: ``segment`` (accepted messages and the contact event),
``stages`` (the stage engine's outputs), ``followups`` (the notifier's records)
and ``rejected`` (dead letters). Field names on the wire are camelCase, as in
the Segment spec. Every model here has a JSON Schema in ``docs/schemas/``;
``funnel_shared.schemas`` writes them and a unit test fails when they drift.
"""

from __future__ import annotations

from funnel_shared.events.followups import (
    FollowUpEvent,
    FollowUpStatus,
    FollowUpTask,
    followup_event_id,
)
from funnel_shared.events.rejected import RejectedRecord
from funnel_shared.events.segment import (
    AliasMessage,
    ContactEvent,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    ScreenMessage,
    SegmentMessage,
    SegmentMessageBase,
    SourceKind,
    TrackMessage,
)
from funnel_shared.events.stages import (
    STAGE_CHANGED_NAMESPACE,
    AnyStageOutput,
    ContactMerged,
    CountExplanation,
    Explanation,
    StageBlocked,
    StageChanged,
    StageOutput,
    StageStalled,
    SumExplanation,
    TotalChanged,
    contact_merged_id,
    merge_id,
    stage_blocked_id,
    stage_change_id,
    stage_stalled_id,
    total_changed_id,
)
from funnel_shared.ids import BLOCKED_IDS

__all__ = [
    "BLOCKED_IDS",
    "STAGE_CHANGED_NAMESPACE",
    "AliasMessage",
    "AnyStageOutput",
    "ContactEvent",
    "ContactMerged",
    "CountExplanation",
    "Explanation",
    "FollowUpEvent",
    "FollowUpStatus",
    "FollowUpTask",
    "GroupMessage",
    "IdentifyMessage",
    "PageMessage",
    "RejectedRecord",
    "ScreenMessage",
    "SegmentMessage",
    "SegmentMessageBase",
    "SourceKind",
    "StageBlocked",
    "StageChanged",
    "StageOutput",
    "StageStalled",
    "SumExplanation",
    "TotalChanged",
    "TrackMessage",
    "contact_merged_id",
    "followup_event_id",
    "merge_id",
    "stage_blocked_id",
    "stage_change_id",
    "stage_stalled_id",
    "total_changed_id",
]
