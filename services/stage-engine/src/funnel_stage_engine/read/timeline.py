"""One contact's timeline across funnels, for its page: pure, over the read API's ``ContactView``.

Stage changes, stalls, merges and refused skips become rows of one list in
event-time order. At one event time a merge or a stall comes before the stage
change it caused, and a refused skip before a change (they are separate
records, so their stored order cannot say).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from funnel_shared.events import Explanation

from funnel_stage_engine.read.api_models import (
    BlockedView,
    ContactView,
    HistoryEntry,
    MergeView,
    StallView,
)
from funnel_stage_engine.read.report import duration

__all__ = ["RowKind", "TimelineRow", "explain", "timeline"]

RowKind = Literal["change", "stall", "merge", "blocked"]
# At one event time: what caused a change first, then the change.
_ORDER: dict[RowKind, int] = {"merge": 0, "stall": 0, "blocked": 1, "change": 2}


@dataclass(frozen=True)
class TimelineRow:
    kind: RowKind
    funnel: str
    event_time: datetime
    processed_at: datetime
    what: str  # e.g. "lead → prospect", "stalled in lead after 2 d"
    rule_id: str | None = None
    cause: str | None = None  # e.g. "track Order Completed", "merge", "stall"
    message_id: str | None = None  # The causing event's messageId (or merge or stall id).
    explanation: str | None = None  # Why a counted or summed rule fired.
    other_contact: str | None = None  # The other side of a merge.


def timeline(view: ContactView) -> list[TimelineRow]:
    """Every row of the contact, oldest first (stable: stored order within a kind)."""
    rows: list[TimelineRow] = []
    for funnel in view.funnels:
        rows += [_change(funnel.funnel, entry) for entry in funnel.history]
        rows += [_stall(funnel.funnel, stall) for stall in funnel.stalls]
        rows += [_blocked(blocked) for blocked in funnel.blocked]
    rows += [_blocked(blocked) for blocked in view.blocked_outside]
    rows += [_merge(view.contact_id, merge) for merge in view.merges]
    return sorted(rows, key=lambda row: (row.event_time, _ORDER[row.kind]))


def explain(explanation: Explanation | None) -> str | None:
    """A counted or summed rule's reason, in words; None for other rules."""
    if explanation is None:
        return None
    parts = []
    if explanation.count is not None:
        count = explanation.count
        parts.append(
            f"{count.matches} matching events within {duration(count.within_seconds)}"
            f" (at least {count.at_least})"
        )
    if explanation.sum is not None:
        total = explanation.sum
        window = "all time" if total.within_seconds is None else duration(total.within_seconds)
        parts.append(
            f"{total.property} totalled {total.total:g} over {window} (at least {total.at_least:g})"
        )
    return "; ".join(parts) or None


def _cause(event_type: str | None, event_name: str | None) -> str | None:
    if event_type is None:
        return None
    return event_type if event_name is None else f"{event_type} {event_name}"


def _change(funnel: str, entry: HistoryEntry) -> TimelineRow:
    if entry.from_stage is None:
        what = f"entered at {entry.to_stage}"
    else:
        what = f"{entry.from_stage} → {entry.to_stage}"
    cause = entry.cause_kind
    if entry.cause_kind == "event":
        cause = _cause(entry.cause_event_type, entry.cause_event_name) or "event"
    return TimelineRow(
        kind="change",
        funnel=funnel,
        event_time=entry.event_time,
        processed_at=entry.processed_at,
        what=what,
        rule_id=entry.rule_id,
        cause=cause,
        message_id=entry.cause_message_id,
        explanation=explain(entry.explanation),
    )


def _stall(funnel: str, stall: StallView) -> TimelineRow:
    what = f"stalled in {stall.stage} after {duration(stall.stalled_after_seconds)}"
    if stall.move_to is not None:
        what += f" (moved to {stall.move_to})"
    return TimelineRow(
        kind="stall",
        funnel=funnel,
        event_time=stall.event_time,
        processed_at=stall.processed_at,
        what=what,
        cause="stall",
        message_id=stall.id,
    )


def _blocked(blocked: BlockedView) -> TimelineRow:
    held = blocked.current_stage or "outside the funnel"
    return TimelineRow(
        kind="blocked",
        funnel=blocked.funnel,
        event_time=blocked.event_time,
        processed_at=blocked.processed_at,
        what=f"refused skip to {blocked.attempted_stage} (stays {held})",
        rule_id=blocked.rule_id,
        cause=_cause(blocked.cause_event_type, blocked.cause_event_name) or "event",
        message_id=blocked.cause_message_id,
    )


def _merge(contact_id: str, merge: MergeView) -> TimelineRow:
    if merge.merged_contact_id == contact_id:
        what = f"merged into {merge.contact_id} (was at {merge.merged_current_stage})"
        other = merge.contact_id
    else:
        what = (
            f"{merge.merged_contact_id} merged in (it was at {merge.merged_current_stage});"
            f" now at {merge.current_stage}"
        )
        other = merge.merged_contact_id
    return TimelineRow(
        kind="merge",
        funnel=merge.funnel,
        event_time=merge.event_time,
        processed_at=merge.processed_at,
        what=what,
        cause="merge",
        message_id=merge.cause_message_id,
        other_contact=other,
    )
