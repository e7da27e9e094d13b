"""Response models of the read API (camelCase on the wire, like the event contracts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from funnel_shared.camel import CamelModel
from funnel_shared.events import Explanation
from pydantic import BaseModel, Field, field_validator

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.read.report import FunnelReport

__all__ = [
    "BlockedView",
    "ContactView",
    "FunnelSummary",
    "FunnelView",
    "HistoryEntry",
    "MergeView",
    "ReportView",
    "StageReportView",
    "StallView",
    "TotalView",
    "contact_view",
    "funnel_summary",
    "funnel_view",
    "report_view",
]


_M = TypeVar("_M", bound=CamelModel)


class HistoryEntry(CamelModel):
    """One stage change and why it happened."""

    id: str
    from_stage: str | None
    to_stage: str
    furthest_stage: str
    rule_id: str
    cause_message_id: str
    cause_kind: str
    cause_event_type: str | None = Field(
        default=None, description="For causeKind 'event': the event's type (track, page, ...)."
    )
    cause_event_name: str | None = Field(
        default=None, description="A track's event or a page's or screen's name."
    )
    event_time: datetime
    processed_at: datetime
    funnel_version: str
    explanation: Explanation | None = Field(
        default=None,
        description=(
            "For a counted or summed rule: the count or running total that crossed its"
            " threshold (e.g. sum.total), as the stage change carried it."
        ),
    )

    @field_validator("explanation", mode="before")
    @classmethod
    def _stored_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class StallView(CamelModel):
    """The contact stayed in ``stage`` past the funnel's allowed time (once per stay)."""

    id: str
    stage: str
    entered_at: datetime
    stalled_after_seconds: float
    move_to: str | None
    event_time: datetime
    processed_at: datetime
    funnel_version: str


class MergeView(CamelModel):
    """An anonymous contact merged into an identified one, for one funnel."""

    id: str
    merge_id: str
    funnel: str
    contact_id: str
    merged_contact_id: str
    current_stage: str
    furthest_stage: str
    merged_current_stage: str
    merged_furthest_stage: str
    cause_message_id: str
    event_time: datetime
    processed_at: datetime


class BlockedView(CamelModel):
    """A refused skip (strict funnels): the contact stayed where it was."""

    id: str
    funnel: str
    current_stage: str | None
    attempted_stage: str
    rule_id: str
    cause_message_id: str
    cause_event_type: str | None = None
    cause_event_name: str | None = None
    event_time: datetime
    processed_at: datetime
    funnel_version: str


class TotalView(CamelModel):
    """A summed rule's running total for the contact, as of the last event that changed it."""

    funnel: str
    rule_id: str
    to_stage: str = Field(description="The stage the rule moves a contact to.")
    property: str = Field(description="The summed property's path, e.g. revenue.")
    total: float = Field(description="The running total (in the rule's window, if it has one).")
    at_least: float = Field(description="The rule's threshold.")
    within_seconds: float | None = Field(description="The window; None: all time.")
    amounts: int = Field(description="Amounts the total is made of (bounded).")
    ignored: int = Field(description="Matching events whose value was not a usable number.")
    cause_message_id: str = Field(
        description="The last change's event messageId (or the mergeId of a merge)."
    )
    cause_kind: str = Field(description="What last changed it: an event or a merge.")
    event_time: datetime = Field(description="Event time of the last change.")
    processed_at: datetime
    funnel_version: str


class ContactFunnelView(CamelModel):
    funnel: str
    funnel_version: str
    current_stage: str
    furthest_stage: str
    entered_at: datetime
    stalled_at: datetime | None
    traits: dict[str, Any]
    history: list[HistoryEntry]
    blocked: list[BlockedView]
    stalls: list[StallView]


class ContactView(CamelModel):
    contact_id: str
    # Set when this (anonymous) contact was merged into an identified one.
    merged_into: str | None
    funnels: list[ContactFunnelView]
    merges: list[MergeView]
    # Blocked attempts in funnels the contact has no stage in yet.
    blocked_outside: list[BlockedView] = Field(default=[])
    totals: list[TotalView] = Field(
        default=[],
        description=(
            "Per summed rule: the running total, kept up to date as events arrive, whether"
            " or not the contact moved (also in funnels it has no stage in yet)."
        ),
    )


class RuleSummary(CamelModel):
    id: str
    to: str
    from_: list[str] | None = None
    backward: bool = False
    counted: bool = False


class FunnelSummary(CamelModel):
    name: str
    description: str
    version: str
    ordering: str
    stages: list[str]


class FunnelView(FunnelSummary):
    rules: list[RuleSummary]


class StageReportView(CamelModel):
    stage: str
    reached: int
    current: int
    in_progress: int
    stalled: int
    blocked: int
    dropped: int = Field(
        default=0, description="Stalled in this stage (in the range) and never progressed."
    )
    conversion_to_next: float | None
    median_seconds_to_next: float | None = Field(
        description="Median time from first reaching this stage to first reaching the next, "
        "estimated from a histogram with 4 slots per doubling: exact when the times near "
        "the median are alone in their slots, else within one slot (under 19% off, or "
        "under 1 s for times under a second)."
    )
    p90_seconds_to_next: float | None = Field(
        description="90th percentile of the same times, estimated the same way."
    )


class ReportView(CamelModel):
    funnel: str
    version: str
    ordering: str
    since: datetime | None
    until: datetime | None
    stages: list[StageReportView]


def funnel_summary(funnel: Funnel) -> FunnelSummary:
    definition = funnel.definition
    return FunnelSummary(
        name=funnel.name,
        description=definition.description,
        version=funnel.version,
        ordering=definition.ordering,
        stages=list(definition.stages),
    )


def funnel_view(funnel: Funnel) -> FunnelView:
    rules = [
        RuleSummary(
            id=rule.id,
            to=rule.to,
            from_=rule.from_,
            backward=rule.backward,
            counted=rule.count is not None,
        )
        for rule in funnel.definition.rules
    ]
    return FunnelView(**funnel_summary(funnel).model_dump(), rules=rules)


def contact_view(
    contact_id: str, rows: Mapping[str, list[dict[str, Any]]], funnels: Mapping[str, Funnel]
) -> ContactView:
    views = []
    for current in rows["current"]:
        name = current["funnel"]
        views.append(
            ContactFunnelView(
                funnel=name,
                funnel_version=current["funnel_version"],
                current_stage=current["current_stage"],
                furthest_stage=current["furthest_stage"],
                entered_at=current["entered_at"],
                stalled_at=current["stalled_at"],
                traits=_json(current["traits"]),
                history=_of(rows["history"], HistoryEntry, name),
                blocked=_of(rows["blocked"], BlockedView, name),
                stalls=_of(rows["stalls"], StallView, name),
            )
        )
    known = {view.funnel for view in views}
    outside = [
        BlockedView(**_pick(r, BlockedView)) for r in rows["blocked"] if r["funnel"] not in known
    ]
    # The funnels this engine runs first; leftovers of removed funnels after them.
    views.sort(key=lambda view: (view.funnel not in funnels, view.funnel))
    # From the merge records: they may be projected before this contact's own rows.
    merged_into = next(
        (m["contact_id"] for m in rows["merges"] if m["merged_contact_id"] == contact_id), None
    )
    return ContactView(
        contact_id=contact_id,
        merged_into=merged_into,
        funnels=views,
        merges=[MergeView(**_pick(r, MergeView)) for r in rows["merges"]],
        blocked_outside=outside,
        totals=[TotalView(**_pick(r, TotalView)) for r in rows.get("totals", [])],
    )


def report_view(
    funnel: Funnel, report: FunnelReport, *, since: datetime | None, until: datetime | None
) -> ReportView:
    return ReportView(
        funnel=funnel.name,
        version=funnel.version,
        ordering=funnel.definition.ordering,
        since=since,
        until=until,
        stages=[
            StageReportView(
                stage=stage.stage,
                reached=stage.reached,
                current=stage.current,
                in_progress=stage.in_progress,
                stalled=stage.stalled,
                dropped=stage.dropped,
                blocked=stage.blocked,
                conversion_to_next=stage.conversion_to_next,
                median_seconds_to_next=stage.median_s_to_next,
                p90_seconds_to_next=stage.p90_s_to_next,
            )
            for stage in report.stages
        ],
    )


def _of(rows: list[dict[str, Any]], model: type[_M], funnel: str) -> list[_M]:
    return [model(**_pick(row, model)) for row in rows if row["funnel"] == funnel]


def _pick(row: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {name: row[name] for name in model.model_fields}


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value)) if isinstance(value, str) else dict(value or {})
