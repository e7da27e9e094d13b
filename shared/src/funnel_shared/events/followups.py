"""The notifier's records: follow-up state changes and tasks handed to other systems."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from funnel_shared.events._wire import JsonObject, Wire

__all__ = ["FollowUpEvent", "FollowUpStatus", "FollowUpTask", "followup_event_id"]

FOLLOWUP_NAMESPACE = uuid.UUID("0b7f3c2e-8d4a-4e51-a0c6-5f2d9e1b7a34")

FollowUpStatus = Literal["scheduled", "sent", "failed", "dead", "cancelled"]


def followup_event_id(*, followup_id: str, status: str, attempt: int) -> str:
    """Deterministic event id: a re-published state change keeps its id."""
    name = "\x1f".join((followup_id, status, str(attempt)))
    return str(uuid.uuid5(FOLLOWUP_NAMESPACE, name))


class FollowUpEvent(Wire):
    """A follow-up changed state: a value on ``funnel.followups.v1``.

    ``scheduled`` when a rule matched (and again when an operator retries a
    dead one), ``failed`` for each failed attempt that will be retried,
    ``sent``, ``dead`` (final failure or attempts used up) and ``cancelled``
    (the contact moved on before a delayed follow-up was due).
    """

    id: str = Field(description="Deterministic: follow-up id, status, attempt.")
    followup_id: str = Field(description="Also the webhook-id and the e-mail Message-ID.")
    status: FollowUpStatus
    rule_id: str
    trigger: Literal["entered", "stalled", "merged"]
    channel: Literal["webhook", "email", "kafka"]
    funnel: str
    contact_id: str
    stage: str | None
    stage_change_id: str = Field(description="The id of the record that triggered the rule.")
    attempt: int = Field(description="Attempts made so far, over the follow-up's whole life.")
    due_at: AwareDatetime | None = Field(description="When the next attempt is due, if any.")
    error: str | None = None
    occurred_at: AwareDatetime


class FollowUpTask(Wire):
    """A follow-up handed to another system through Kafka (the rule's ``kafka`` action)."""

    id: str = Field(description="The follow-up id; stable across retries.")
    task: str = Field(description="What to do, as named in the rule, e.g. 'crm.call'.")
    rule_id: str
    funnel: str
    contact_id: str
    stage: str | None
    stage_change_id: str
    trigger: JsonObject = Field(description="The record that triggered the rule, as received.")
