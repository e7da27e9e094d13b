"""What the stage engine publishes on ``funnel.stage-changed.v1``, told apart by ``kind``.

Every id is deterministic (a UUID5 of what caused the record), so a replay
publishes the same ids and consumers drop duplicates by id.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from funnel_shared.events._wire import JsonObject, Wire
from funnel_shared.events.segment import SourceKind

__all__ = [
    "STAGE_CHANGED_NAMESPACE",
    "AnyStageOutput",
    "ContactMerged",
    "CountExplanation",
    "Explanation",
    "StageBlocked",
    "StageChanged",
    "StageOutput",
    "StageStalled",
    "SumExplanation",
    "TotalChanged",
    "contact_merged_id",
    "merge_id",
    "stage_blocked_id",
    "stage_change_id",
    "stage_stalled_id",
    "total_changed_id",
]

STAGE_CHANGED_NAMESPACE = uuid.UUID("6f1c9a52-3c1e-4f43-9b7e-2b1c0d8b5a10")


def stage_change_id(*, funnel: str, contact_id: str, message_id: str, to_stage: str) -> str:
    """Deterministic id, so that a replay of the same event yields the same id."""
    name = "\x1f".join((funnel, contact_id, message_id, to_stage))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class CountExplanation(Wire):
    """A counted rule fired: how many matches its window held."""

    matches: int = Field(description="Matching events in the window when the rule fired.")
    at_least: int
    within_seconds: float


class SumExplanation(Wire):
    """A summed rule fired: the total that reached its threshold."""

    property: str = Field(description="The summed property's path, e.g. revenue.")
    total: float = Field(description="The total in the window when the rule fired.")
    at_least: float
    within_seconds: float | None = Field(description="The window; None: all time.")


class Explanation(Wire):
    """Why a counted or summed rule fired (absent for other rules)."""

    count: CountExplanation | None = None
    sum: SumExplanation | None = None


class StageChanged(Wire):
    """A contact moved between stages of one funnel: a value on ``funnel.stage-changed.v1``."""

    kind: Literal["stage_changed"] = "stage_changed"
    id: str = Field(description="Deterministic: funnel, contact, causing messageId, target stage.")
    funnel: str
    funnel_version: str
    contact_id: str
    from_stage: str | None = Field(description="None when the contact enters the funnel.")
    to_stage: str
    furthest_stage: str
    rule_id: str = Field(
        description="The funnel rule that fired; 'merge' for a merge, 'stall' for a stall move."
    )
    cause_message_id: str = Field(
        description=(
            "The causing event's messageId; for causeKind 'merge' the ContactMerged mergeId,"
            " for 'stall' the StageStalled id."
        )
    )
    cause_kind: Literal["event", "merge", "stall"] = Field(
        default="event", description="What caused the change: an event, a merge or a stall."
    )
    cause_source: str | None = Field(
        default=None,
        description="For causeKind 'event': the source that sent the event (None otherwise).",
    )
    cause_source_kind: SourceKind | None = Field(
        default=None,
        description=(
            "For causeKind 'event': that source's kind, browser or server (None otherwise,"
            " and in records from before this field)."
        ),
    )
    cause_event_type: str | None = Field(
        default=None,
        description=(
            "For causeKind 'event': the event's type (track, page, identify, ...); None"
            " otherwise, and in records from before this field."
        ),
    )
    cause_event_name: str | None = Field(
        default=None,
        description="For causeKind 'event': a track's event or a page's or screen's name.",
    )
    event_time: AwareDatetime = Field(
        description="Event time of the cause (for a stall: the deadline that passed)."
    )
    processed_at: AwareDatetime
    traits: JsonObject = Field(default_factory=dict)
    explanation: Explanation | None = Field(
        default=None,
        description=(
            "For a counted or summed rule: the count or total that crossed its threshold"
            " (None for other rules, and in records from before this field)."
        ),
    )


def stage_blocked_id(*, funnel: str, contact_id: str, message_id: str, attempted_stage: str) -> str:
    """Deterministic id of a refused skip, distinct from any stage-change id."""
    name = "\x1f".join(("blocked", funnel, contact_id, message_id, attempted_stage))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class StageBlocked(Wire):
    """A strict funnel refused a skip: a value on ``funnel.stage-changed.v1``.

    The contact stays where it is; the attempt is recorded so that reports can
    show where contacts try to jump ahead.
    """

    kind: Literal["stage_blocked"] = "stage_blocked"
    id: str = Field(description="Deterministic: funnel, contact, messageId, attempted stage.")
    funnel: str
    funnel_version: str
    contact_id: str
    current_stage: str | None = Field(description="Where the contact stays; None if not yet in it.")
    attempted_stage: str
    rule_id: str
    cause_message_id: str
    cause_event_type: str | None = Field(
        default=None, description="The refused event's type (None in records before this field)."
    )
    cause_event_name: str | None = Field(
        default=None, description="A track's event or a page's or screen's name."
    )
    event_time: AwareDatetime
    processed_at: AwareDatetime


def merge_id(*, merged_contact_id: str, contact_id: str) -> str:
    """Deterministic id of merging one anonymous contact into one identified contact.

    An anonymousId is merged at most once (its first owner keeps it), so the
    pair is enough: every replay of the link yields the same id.
    """
    name = "\x1f".join(("merge", merged_contact_id, contact_id))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


def contact_merged_id(*, funnel: str, merge_id: str) -> str:
    """Deterministic id of one merge's record for one funnel."""
    name = "\x1f".join(("merged", funnel, merge_id))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class ContactMerged(Wire):
    """An anonymous contact merged into an identified one: on ``funnel.stage-changed.v1``.

    One record per funnel in which the merged (anonymous) contact had a stage,
    all sharing one ``mergeId``. The stages given are the identified contact's
    after the merge; if the merge moved it, a ``stage_changed`` record with
    ``causeKind`` 'merge' and ``causeMessageId`` = ``mergeId`` follows.
    """

    kind: Literal["contact_merged"] = "contact_merged"
    id: str = Field(description="Deterministic: funnel and mergeId.")
    merge_id: str = Field(description="Deterministic: the merged and the surviving contact ids.")
    funnel: str
    funnel_version: str
    contact_id: str = Field(description="The surviving, identified contact (a userId).")
    merged_contact_id: str = Field(description="The anonymous contact merged into it.")
    current_stage: str = Field(description="The contact's current stage after the merge.")
    furthest_stage: str = Field(description="The furthest stage reached, after the merge.")
    merged_current_stage: str = Field(description="The anonymous contact's current stage.")
    merged_furthest_stage: str = Field(description="The anonymous contact's furthest stage.")
    cause_message_id: str = Field(description="The identify or alias messageId that linked them.")
    event_time: AwareDatetime = Field(description="Event time of the linking message.")
    processed_at: AwareDatetime
    traits: JsonObject = Field(default_factory=dict, description="The merged contact's traits.")


def stage_stalled_id(*, funnel: str, contact_id: str, stage: str, entry_id: str) -> str:
    """Deterministic id of a stall: one per stay, a stay being named by what caused the entry."""
    name = "\x1f".join(("stalled", funnel, contact_id, stage, entry_id))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class StageStalled(Wire):
    """A contact stayed in a stage too long: a value on ``funnel.stage-changed.v1``.

    Emitted once per stay. When the funnel moves stalled contacts (``moveTo``),
    a ``stage_changed`` record with ``causeKind`` 'stall' and
    ``causeMessageId`` = this id follows.
    """

    kind: Literal["stage_stalled"] = "stage_stalled"
    id: str = Field(description="Deterministic: funnel, contact, stage, and the entry's cause id.")
    funnel: str
    funnel_version: str
    contact_id: str
    stage: str = Field(description="The stage the contact stalled in.")
    furthest_stage: str
    entered_at: AwareDatetime = Field(description="Event time at which the contact entered it.")
    entry_id: str = Field(description="The messageId (or merge id) that moved it into the stage.")
    stalled_after_seconds: float = Field(description="The funnel's allowed stay, in seconds.")
    move_to: str | None = Field(default=None, description="Where the stall moves the contact.")
    event_time: AwareDatetime = Field(description="The deadline: enteredAt + the allowed stay.")
    processed_at: AwareDatetime
    traits: JsonObject = Field(default_factory=dict)


def total_changed_id(
    *, funnel: str, contact_id: str, rule_id: str, cause_id: str, sequence: int
) -> str:
    """Deterministic id of one rule's running total changed by one event or merge.

    With the sequence: a merge re-sent with more history changes the total again under
    the same merge id, and must not look like a replay of the first.
    """
    name = "\x1f".join(("total", funnel, contact_id, rule_id, cause_id, str(sequence)))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class TotalChanged(Wire):
    """A summed rule's running total for a contact changed: on ``funnel.stage-changed.v1``.

    Published whenever an event (or a merge) changes the total, or the count of
    ignored values, of a ``sum:`` rule, whether or not the contact moves; the
    read side keeps the latest per (contact, funnel, rule). The total is the one
    the rule sees: the window ends at the newest matching event's time, so it
    does not change as time passes without a matching event. Consumers that do
    not need totals ignore this kind.
    """

    kind: Literal["total_changed"] = "total_changed"
    id: str = Field(
        description="Deterministic: funnel, contact, rule, the causing id and the sequence."
    )
    funnel: str
    funnel_version: str
    contact_id: str
    rule_id: str = Field(description="The summed rule.")
    to_stage: str = Field(description="The stage the rule moves a contact to.")
    property: str = Field(description="The summed property's path, e.g. revenue.")
    total: float = Field(description="The running total, in the window when it has one.")
    at_least: float = Field(description="The rule's threshold.")
    within_seconds: float | None = Field(description="The window; None: all time.")
    amounts: int = Field(description="Amounts the total is made of (bounded).")
    ignored: int = Field(description="Matching events whose value was not a usable number.")
    sequence: int = Field(
        description=(
            "Grows with every change of this contact's total for this rule: a consumer keeps"
            " the record with the highest (a replayed older record has a lower one)."
        )
    )
    cause_message_id: str = Field(
        description="The event's messageId; for causeKind 'merge' the ContactMerged mergeId."
    )
    cause_kind: Literal["event", "merge"] = Field(description="What changed the total.")
    event_time: AwareDatetime = Field(description="Event time of the cause.")
    processed_at: AwareDatetime


# The one definition of what the stage engine publishes on funnel.stage-changed.v1:
# the plain union for type hints, and the same union told apart by ``kind`` for
# decoding (``TypeAdapter(StageOutput)``) and for the JSON Schema.
AnyStageOutput = StageChanged | StageBlocked | ContactMerged | StageStalled | TotalChanged
StageOutput = Annotated[AnyStageOutput, Field(discriminator="kind")]
