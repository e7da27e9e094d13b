"""Kafka helpers: client parameters from settings, topic creation, the aiokafka publisher.

Everything that knows aiokafka's argument names lives here, so the services
stay free of broker tuning and the embedded broker is only configuration.
The publisher seam itself (``Publisher``, ``publish_all``) is in
``funnel_shared.publishing``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from pydantic import BaseModel

from funnel_shared.cloudevents import cloudevent_headers
from funnel_shared.events import RejectedRecord
from funnel_shared.publishing import OutboundRecord
from funnel_shared.settings import KafkaSettings

__all__ = [
    "AiokafkaPublisher",
    "TopicCreationError",
    "consumer_kwargs",
    "creation_failures",
    "encode_model",
    "ensure_topics",
    "producer_kwargs",
    "rejected_record",
]


def producer_kwargs(settings: KafkaSettings, *, client_id: str) -> dict[str, Any]:
    """aiokafka producer arguments. Always acks=all: acks=0/1 can lose records."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{client_id}",
        "acks": "all",
        "enable_idempotence": settings.enable_idempotence,
        "max_batch_size": settings.producer_max_batch_size,
        "linger_ms": settings.producer_linger_ms,
        "request_timeout_ms": settings.request_timeout_ms,
    }


def consumer_kwargs(settings: KafkaSettings, *, client_id: str, group_id: str) -> dict[str, Any]:
    """aiokafka consumer arguments for a group that commits by hand after its effects."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{client_id}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "request_timeout_ms": max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
    }


async def ensure_topics(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet, with settings-driven partitions.

    The embedded broker auto-creates topics with 4 partitions on first use, so
    every topic is created explicitly before any service touches it. ``configs``
    (e.g. ``min.insync.replicas``) apply to the topics created here; existing
    topics are left as they are. Returns the names this call created.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                name=name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=dict(configs or {}),
            )
            for name in missing
        ]
        response = await admin.create_topics(new_topics)
        failures = creation_failures(response.topic_errors)
        if failures:
            raise TopicCreationError("cannot create topics: " + "; ".join(failures))
        return missing
    finally:
        await admin.close()


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic (replication factor, configs, ...)."""


def creation_failures(topic_errors: Iterable[Sequence[Any]]) -> list[str]:
    """Readable failures from a CreateTopics response's ``topic_errors``.

    aiokafka returns per-topic errors instead of raising them. "Already exists"
    is success: another process won the race and the topic is there.
    """
    failures = []
    for entry in topic_errors:
        name, code = entry[0], entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        failures.append(f"{name}: {for_code(code).__name__} {message}".rstrip())
    return failures


class AiokafkaPublisher:
    """``Publisher`` over an aiokafka producer: ``send()`` buffers, its future is the ack."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, topic: str, record: OutboundRecord) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer.send(
            topic, key=record.key.encode(), value=record.value, headers=record.headers
        )
        return future


def encode_model(
    model: BaseModel, *, key: str, event_id: str, event_type: str, source: str, time: datetime
) -> OutboundRecord:
    """A pydantic model as a JSON record with CloudEvents headers."""
    return OutboundRecord(
        key=key,
        value=model.model_dump_json().encode(),
        headers=cloudevent_headers(
            event_id=event_id, source=source, event_type=event_type, time=time
        ),
    )


def rejected_record(
    *, service: str, origin: str, key: str | None, original: bytes | str, errors: list[str]
) -> OutboundRecord:
    """A dead letter that keeps the original record (as text) and the reason."""
    text = original if isinstance(original, str) else original.decode("utf-8", "backslashreplace")
    record = RejectedRecord(
        service=service,
        origin=origin,
        key=key,
        errors=errors,
        original=text,
        rejected_at=datetime.now(UTC),
    )
    return encode_model(
        record,
        key=key or record.id,
        event_id=record.id,
        event_type="funnel.rejected.v1",
        source=f"/funnel/{service}",
        time=record.rejected_at,
    )
