"""Kafka helpers against a real broker, read back with a non-aiokafka client."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from funnel_shared.events import RejectedRecord
from funnel_shared.kafka import (
    AiokafkaPublisher,
    ensure_topics,
    producer_kwargs,
    rejected_record,
)
from funnel_shared.publishing import publish
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.kafka_reader import read_records

pytestmark = pytest.mark.integration


async def test_ensure_topics_creates_missing_topics_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    name = f"test.partitions.{uuid.uuid4().hex[:12]}"
    settings = kafka_settings.model_copy(update={"partitions": 3})
    await ensure_topics(settings, [name])
    await ensure_topics(settings, [name])  # Idempotent: a second run changes nothing.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        [description] = await admin.describe_topics([name])
    finally:
        await admin.close()
    assert len(description["partitions"]) == 3


async def test_dead_letter_keeps_the_original_bytes_and_cloudevents_headers(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="test"))
    await producer.start()
    try:
        record = rejected_record(
            service="test",
            origin="somewhere",
            key="contact-1",
            original=b"\xff not json \xe2\x82\xac",
            errors=["bad"],
        )
        await publish(AiokafkaPublisher(producer), topics.rejected, record)
    finally:
        await producer.stop()

    [read] = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=1
    )
    assert read.key == b"contact-1"
    dead = RejectedRecord.model_validate_json(read.value)
    assert dead.original == "\\xff not json \u20ac"
    assert dead.errors == ["bad"]
    assert read.headers["ce_type"] == "funnel.rejected.v1"
    assert read.headers["ce_id"] == dead.id
    assert read.headers["ce_source"] == "/funnel/test"
    assert read.headers["content-type"] == "application/json"
