"""Pure enrichment of an accepted Segment message into a ContactEvent."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from funnel_shared.events import ContactEvent, SegmentMessageBase, SourceKind
from funnel_shared.ids import is_blocked_id

__all__ = ["new_message_id", "normalize"]

# Each Segment model's field names and their wire names (aliases), looked up once.
_WIRE_NAMES: dict[str, str] = {}


def _wire_name(name: str, model: type[SegmentMessageBase]) -> str:
    wire = _WIRE_NAMES.get(name)
    if wire is None:
        wire = _WIRE_NAMES[name] = model.model_fields[name].alias or name
    return wire


class _RandomPool:
    """``os.urandom`` bytes drawn 4 KiB at a time (one system call per 256 ids, not one per
    id), handed out once each under a lock (batches are checked in worker threads too).
    A forked child starts with an empty pool: it never reuses its parent's bytes."""

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._offset + count > len(self._buffer):
                self._buffer, self._offset = os.urandom(self.SIZE), 0
            start = self._offset
            self._offset += count
            return self._buffer[start : start + count]

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.forget)


def new_message_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` gives it (same source:
    ``os.urandom``), without building the object."""
    raw = bytearray(_random.take(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def normalize(
    message: SegmentMessageBase,
    *,
    received_at: datetime,
    source: str,
    client_ip: str | None,
    source_kind: SourceKind = "browser",
    new_message_id: Callable[[], str] = new_message_id,
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

    # By wire name (alias), so that what we set below replaces any same-named field the
    # sender sent: the declared fields as validated, then the sender's extra fields (which
    # cannot share a declared field's wire name), as model_dump(by_alias=True) gives them
    # but without copying every nested object once more (ContactEvent's validation does).
    model = type(message)
    fields: dict[str, Any] = {
        _wire_name(name, model): value
        for name, value in message.__dict__.items()
        if name != "context" and name != "timestamp"
    }
    if message.model_extra:
        fields.update(message.model_extra)
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
