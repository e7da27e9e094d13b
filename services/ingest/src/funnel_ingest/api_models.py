"""Request and response bodies of the HTTP API, for the OpenAPI document and for answers.

camelCase on the wire (``funnel_shared.camel``), which is also Segment's."""

from __future__ import annotations

from typing import Any

from funnel_shared.camel import CamelModel
from funnel_shared.events import SegmentMessage
from pydantic import AwareDatetime, ConfigDict, Field

__all__ = ["Accepted", "BatchAccepted", "BatchRequest", "RejectedMessage"]


class Accepted(CamelModel):
    """A single message, acknowledged by the broker."""

    success: bool = True
    message_id: str


class RejectedMessage(CamelModel):
    index: int = Field(description="Position in the batch, from 0.")
    message_id: str | None = Field(description="The message's own messageId, if it had one.")
    errors: list[str]


class BatchAccepted(CamelModel):
    """Every valid message acknowledged; every invalid one on the rejected topic."""

    success: bool = True
    accepted: int
    rejected: list[RejectedMessage]


class BatchRequest(CamelModel):
    """``/v1/batch`` and ``/v1/import``. Batch-level ``context`` and ``integrations``
    merge into every message (a message's own values win); ``sentAt`` applies to
    every message that has none."""

    model_config = ConfigDict(extra="allow")

    batch: list[SegmentMessage] = Field(max_length=2500)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sent_at: AwareDatetime | None = None
    write_key: str | None = Field(default=None, description="Instead of HTTP Basic auth.")
