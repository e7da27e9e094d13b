"""Contact events as ingest writes them, for tests that feed the stage engine directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import encode_model, producer_kwargs
from funnel_shared.settings import KafkaSettings

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def contact_event(
    contact: str,
    kind: str = "track",
    event: str | None = None,
    *,
    at: datetime = START,
    message_id: str | None = None,
    **fields: Any,
) -> ContactEvent:
    return ContactEvent.model_validate(
        {
            "type": kind,
            "messageId": message_id or str(uuid.uuid4()),
            "userId": contact,
            "event": event,
            "timestamp": at.isoformat(),
            "receivedAt": (at + timedelta(seconds=1)).isoformat(),
            "source": "test",
            **fields,
        }
    )


async def produce(
    settings: KafkaSettings, topic: str, events: Sequence[ContactEvent | tuple[str, bytes]]
) -> None:
    """Send in order, each keyed by its contact; a ``(key, bytes)`` pair is sent as it is."""
    producer = AIOKafkaProducer(**producer_kwargs(settings, client_id="test"))
    await producer.start()
    try:
        await send_events(producer, topic, events)
    finally:
        await producer.stop()


async def send_events(
    producer: AIOKafkaProducer, topic: str, events: Sequence[ContactEvent | tuple[str, bytes]]
) -> None:
    """``produce`` through a producer the caller started (no start-up delay)."""
    pending = []
    for item in events:
        if isinstance(item, ContactEvent):
            record = encode_model(
                item,
                key=item.contact_key,
                event_id=item.message_id,
                event_type=f"segment.{item.type}",
                source="/funnel/ingest/test",
                time=item.timestamp,
            )
            key, value, headers = record.key, record.value, record.headers
        else:
            (key, value), headers = item, []
        pending.append(await producer.send(topic, key=key.encode(), value=value, headers=headers))
    await asyncio.gather(*pending)  # Every ack, or the first error.
