"""Contact events as ingest writes them, for feeding the stage engine directly.

Each contact walks a journey through the built-in funnels; contacts are
interleaved so that partitions carry many contacts, and each contact's events
stay in order (they are keyed by contact).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import encode_model, producer_kwargs
from funnel_shared.publishing import OutboundRecord
from funnel_shared.settings import KafkaSettings

__all__ = ["JOURNEY", "contact_record", "journey_records", "preload"]

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

# (type, fields): visitor -> lead -> prospect -> customer -> repeat customer, with AIDA on the way.
JOURNEY: list[tuple[str, dict[str, Any]]] = [
    ("page", {"name": "Home", "context": {"page": {"path": "/"}}}),
    ("track", {"event": "Product Viewed", "properties": {"product_id": "sku-1"}}),
    ("identify", {"traits": {"email": "someone@example.com", "name": "Some One"}}),
    ("page", {"name": "Pricing", "context": {"page": {"path": "/pricing"}}}),
    ("track", {"event": "Product Added", "properties": {"product_id": "sku-1"}}),
    ("track", {"event": "Demo Requested"}),
    ("track", {"event": "Order Completed", "properties": {"total": 42.5}}),
    ("track", {"event": "Order Completed", "properties": {"total": 19.0}}),
]


def contact_record(contact: str, step: int, kind: str, fields: dict[str, Any]) -> OutboundRecord:
    at = START + timedelta(minutes=step)
    event = ContactEvent.model_validate(
        {
            "type": kind,
            "messageId": str(uuid.uuid4()),
            "userId": contact,
            "timestamp": at.isoformat(),
            "receivedAt": (at + timedelta(seconds=1)).isoformat(),
            "source": "bench",
            **fields,
        }
    )
    return encode_model(
        event,
        key=contact,
        event_id=event.message_id,
        event_type=f"segment.{kind}",
        source="/funnel/ingest/bench",
        time=event.timestamp,
    )


def journey_records(total: int, *, prefix: str) -> Iterator[OutboundRecord]:
    """``total`` events: contacts walk the journey, interleaved one step at a time."""
    contacts = max(1, total // len(JOURNEY))
    produced = 0
    for step, (kind, fields) in enumerate(JOURNEY * (total // (contacts * len(JOURNEY)) + 1)):
        for c in range(contacts):
            if produced >= total:
                return
            yield contact_record(f"{prefix}-{c}", step, kind, fields)
            produced += 1


async def preload(kafka: KafkaSettings, topic: str, records: Iterator[OutboundRecord]) -> int:
    """Send every record and wait for every ack; at most a few thousand in flight."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka, client_id="bench-preload"))
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            pending.append(
                await producer.send(
                    topic, key=record.key.encode(), value=record.value, headers=record.headers
                )
            )
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
