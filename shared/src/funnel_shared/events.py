"""Event contracts: the Segment messages we accept and the records we publish.

Field names on the wire are camelCase, as in the Segment spec. Every model
here has a JSON Schema in ``docs/schemas/``; ``funnel_shared.schemas`` writes
them and a unit test fails when they drift.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "STAGE_CHANGED_NAMESPACE",
    "AliasMessage",
    "ContactEvent",
    "ContactMerged",
    "GroupMessage",
    "IdentifyMessage",
    "PageMessage",
    "RejectedRecord",
    "ScreenMessage",
    "SegmentMessage",
    "SegmentMessageBase",
    "StageBlocked",
    "StageChanged",
    "StageOutput",
    "StageStalled",
    "TrackMessage",
    "contact_merged_id",
    "merge_id",
    "stage_blocked_id",
    "stage_change_id",
    "stage_stalled_id",
]

# Identity values that Segment's own pipeline treats as "not an id".
BLOCKED_IDS = frozenset({"", "null", "undefined", "anonymous", "0", "-1"})

JsonObject = dict[str, Any]


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )


class SegmentMessageBase(_Wire):
    """Fields common to every Segment message type."""

    # Unknown top-level fields (e.g. "channel", "version") travel on untouched.
    model_config = ConfigDict(extra="allow")

    message_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    timestamp: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    original_timestamp: AwareDatetime | None = None
    context: JsonObject = Field(default_factory=dict)
    integrations: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_an_identity(self) -> SegmentMessageBase:
        if _usable_id(self.user_id) is None and _usable_id(self.anonymous_id) is None:
            raise ValueError("userId or anonymousId is required")
        return self


class TrackMessage(SegmentMessageBase):
    type: Literal["track"] = "track"
    event: Annotated[str, Field(min_length=1)]
    properties: JsonObject = Field(default_factory=dict)


class IdentifyMessage(SegmentMessageBase):
    type: Literal["identify"] = "identify"
    traits: JsonObject = Field(default_factory=dict)


class PageMessage(SegmentMessageBase):
    type: Literal["page"] = "page"
    name: str | None = None
    category: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class ScreenMessage(SegmentMessageBase):
    type: Literal["screen"] = "screen"
    name: str | None = None
    category: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class GroupMessage(SegmentMessageBase):
    type: Literal["group"] = "group"
    group_id: Annotated[str, Field(min_length=1)]
    traits: JsonObject = Field(default_factory=dict)


class AliasMessage(SegmentMessageBase):
    type: Literal["alias"] = "alias"
    previous_id: Annotated[str, Field(min_length=1)]
    user_id: Annotated[str, Field(min_length=1)]


SegmentMessage = Annotated[
    TrackMessage | IdentifyMessage | PageMessage | ScreenMessage | GroupMessage | AliasMessage,
    Field(discriminator="type"),
]


class ContactEvent(_Wire):
    """One normalized Segment message: the value on ``funnel.contact-events.v1``.

    Ingest fills in what the sender may leave out (messageId, receivedAt,
    timestamp, source), so consumers never have to.
    """

    model_config = ConfigDict(extra="allow")

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    message_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    group_id: str | None = None
    previous_id: str | None = None
    properties: JsonObject = Field(default_factory=dict)
    traits: JsonObject = Field(default_factory=dict)
    context: JsonObject = Field(default_factory=dict)
    integrations: JsonObject = Field(default_factory=dict)
    timestamp: AwareDatetime = Field(description="Event time, corrected for client clock skew.")
    sent_at: AwareDatetime | None = None
    original_timestamp: AwareDatetime | None = None
    received_at: AwareDatetime
    source: str = Field(description="The named source that owns the write key.")

    @property
    def contact_key(self) -> str:
        """The partition key: userId, else anonymousId."""
        key = _usable_id(self.user_id) or _usable_id(self.anonymous_id)
        if key is None:  # The ingest validators make this unreachable for our own records.
            raise ValueError("event has neither userId nor anonymousId")
        return key


STAGE_CHANGED_NAMESPACE = uuid.UUID("6f1c9a52-3c1e-4f43-9b7e-2b1c0d8b5a10")


def stage_change_id(*, funnel: str, contact_id: str, message_id: str, to_stage: str) -> str:
    """Deterministic id, so that a replay of the same event yields the same id."""
    name = "\x1f".join((funnel, contact_id, message_id, to_stage))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class StageChanged(_Wire):
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
    event_time: AwareDatetime = Field(
        description="Event time of the cause (for a stall: the deadline that passed)."
    )
    processed_at: AwareDatetime
    traits: JsonObject = Field(default_factory=dict)


def stage_blocked_id(*, funnel: str, contact_id: str, message_id: str, attempted_stage: str) -> str:
    """Deterministic id of a refused skip, distinct from any stage-change id."""
    name = "\x1f".join(("blocked", funnel, contact_id, message_id, attempted_stage))
    return str(uuid.uuid5(STAGE_CHANGED_NAMESPACE, name))


class StageBlocked(_Wire):
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


class ContactMerged(_Wire):
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


class StageStalled(_Wire):
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


# What the stage engine publishes on funnel.stage-changed.v1, told apart by ``kind``.
StageOutput = Annotated[
    StageChanged | StageBlocked | ContactMerged | StageStalled, Field(discriminator="kind")
]


class RejectedRecord(_Wire):
    """Something a service could not process: a value on ``funnel.rejected.v1``."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    service: str = Field(description="The service that rejected it, e.g. 'ingest'.")
    origin: str = Field(description="Where it came from: an HTTP route or a topic name.")
    key: str | None = None
    errors: list[str]
    original: str = Field(description="The original record, as text (undecodable bytes escaped).")
    rejected_at: datetime


def _usable_id(value: str | None) -> str | None:
    if value is None or value.strip().lower() in BLOCKED_IDS:
        return None
    return value
