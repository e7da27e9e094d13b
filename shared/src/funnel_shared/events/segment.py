"""The Segment messages ingest accepts, and the contact event it publishes for each.

Field names on the wire are camelCase, as in the Segment spec.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from funnel_shared.events._wire import JsonObject, Wire
from funnel_shared.ids import usable_id

__all__ = [
    "AliasMessage",
    "ContactEvent",
    "GroupMessage",
    "IdentifyMessage",
    "PageMessage",
    "ScreenMessage",
    "SegmentMessage",
    "SegmentMessageBase",
    "SourceKind",
    "TrackMessage",
]

# Who holds a write key: ``browser`` keys are public (anyone can send with them);
# ``server`` keys are secret, kept on the sender's own servers.
SourceKind = Literal["browser", "server"]


class SegmentMessageBase(Wire):
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
        if usable_id(self.user_id) is None and usable_id(self.anonymous_id) is None:
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


class ContactEvent(Wire):
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
    source_kind: SourceKind = Field(
        default="browser",
        description=(
            "The kind of that source's write key, stamped by ingest: browser (public: anyone"
            " may send with it) or server (secret). Records from before this field: browser."
        ),
    )

    @property
    def contact_key(self) -> str:
        """The partition key: userId, else anonymousId."""
        key = usable_id(self.user_id) or usable_id(self.anonymous_id)
        if key is None:  # The ingest validators make this unreachable for our own records.
            raise ValueError("event has neither userId nor anonymousId")
        return key
