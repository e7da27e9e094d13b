"""Pure enrichment of an accepted Segment message into a ContactEvent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from funnel_shared.events import ContactEvent, SegmentMessageBase

__all__ = ["normalize"]


def normalize(
    message: SegmentMessageBase,
    *,
    received_at: datetime,
    source: str,
    client_ip: str | None,
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> ContactEvent:
    """Fill in what the sender may leave out.

    When ``sentAt`` is present the client's clock offset is
    ``sentAt - receivedAt``; the event time is the client's timestamp minus
    that offset, i.e. ``receivedAt - (sentAt - timestamp)``.
    """
    client_time = message.timestamp or message.original_timestamp
    if client_time is None:
        event_time = received_at
    elif message.sent_at is not None:
        event_time = received_at - (message.sent_at - client_time)
    else:
        event_time = client_time

    context = dict(message.context)
    if client_ip is not None and "ip" not in context:
        context["ip"] = client_ip

    fields = message.model_dump(by_alias=False, exclude={"context", "timestamp"})
    fields.update(
        message_id=message.message_id or new_message_id(),
        context=context,
        timestamp=event_time,
        original_timestamp=message.original_timestamp or message.timestamp,
        received_at=received_at,
        source=source,
    )
    return ContactEvent.model_validate(fields)
