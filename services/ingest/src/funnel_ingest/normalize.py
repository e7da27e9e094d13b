"""Pure enrichment of an accepted Segment message into a ContactEvent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from funnel_shared.events import ContactEvent, SegmentMessageBase, SourceKind
from funnel_shared.ids import is_blocked_id

__all__ = ["normalize"]


def normalize(
    message: SegmentMessageBase,
    *,
    received_at: datetime,
    source: str,
    client_ip: str | None,
    source_kind: SourceKind = "browser",
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    future_tolerance: timedelta = timedelta(minutes=5),
) -> ContactEvent:
    """Fill in what the sender may leave out.

    When ``sentAt`` is present the client's clock offset is
    ``sentAt - receivedAt``; the event time is the client's timestamp minus
    that offset, i.e. ``receivedAt - (sentAt - timestamp)``.

    An event time (after that correction) more than ``future_tolerance`` past
    ``receivedAt`` is not believed: it becomes ``receivedAt``, and the client's
    own time stays in ``originalTimestamp``. Times in the past are kept: imports
    of history are legitimate.

    Raises ``pydantic.ValidationError`` when an extra field the sender made up
    collides with a ContactEvent field of another type (e.g. ``event: 5`` on an
    identify): the caller treats that as an invalid message.
    """
    client_time = message.timestamp or message.original_timestamp
    if client_time is None:
        event_time = received_at
    elif message.sent_at is not None:
        event_time = received_at - (message.sent_at - client_time)
    else:
        event_time = client_time
    if event_time - received_at > future_tolerance:
        event_time = received_at

    context = dict(message.context)
    if client_ip is not None and "ip" not in context:
        context["ip"] = client_ip

    # By alias, so that what we set below replaces any same-named field the sender sent.
    fields = message.model_dump(by_alias=True, exclude={"context", "timestamp"})
    for id_field in ("userId", "anonymousId"):
        if is_blocked_id(fields.get(id_field)):
            fields[id_field] = None
    fields.update(
        messageId=message.message_id or new_message_id(),
        context=context,
        timestamp=event_time,
        originalTimestamp=message.original_timestamp or message.timestamp,
        receivedAt=received_at,
        source=source,
        # Set here, never taken from the sender: a browser key cannot claim to be a server.
        sourceKind=source_kind,
    )
    return ContactEvent.model_validate(fields)
