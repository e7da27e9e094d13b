"""The notifier's consumer against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from funnel_notifier.consumer import StageChangeConsumer
from funnel_notifier.main import migrate
from funnel_notifier.postgres.intake import PostgresStageChangeStore
from funnel_shared.events import RejectedRecord, StageChanged
from funnel_shared.kafka import AiokafkaPublisher, consumer_kwargs, encode_model, producer_kwargs
from funnel_shared.publishing import publish
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pydantic import SecretStr

from tests.support.kafka_reader import read_records

pytestmark = pytest.mark.integration


def _change(contact_id: str) -> StageChanged:
    now = datetime.now(UTC)
    return StageChanged(
        id=str(uuid.uuid4()),
        funnel="lifecycle",
        funnel_version="test",
        contact_id=contact_id,
        from_stage=None,
        to_stage="lead",
        furthest_stage="lead",
        rule_id="test.rule",
        cause_message_id=str(uuid.uuid4()),
        event_time=now,
        processed_at=now,
    )


async def _wait_for(predicate: object, *, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_migrations_are_idempotent(migrated_database: str) -> None:
    await asyncio.to_thread(migrate, DatabaseSettings(database_url=SecretStr(migrated_database)))
    connection = await asyncpg.connect(migrated_database)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version_notifier")
    finally:
        await connection.close()
    assert version == "0002"


async def test_redelivered_stage_change_is_stored_once_and_garbage_is_dead_lettered(
    kafka_settings: KafkaSettings, topics: TopicSettings, migrated_database: str
) -> None:
    contact = f"contact-{uuid.uuid4().hex}"
    change = _change(contact)
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="test"))
    await producer.start()
    publisher = AiokafkaPublisher(producer)
    record = encode_model(
        change,
        key=contact,
        event_id=change.id,
        event_type="funnel.stage_changed",
        source="/test",
        time=change.processed_at,
    )
    await publish(publisher, topics.stage_changed, record)
    await publish(publisher, topics.stage_changed, record)  # A redelivery.
    await producer.send_and_wait(topics.stage_changed, key=contact.encode(), value=b"{oops")

    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=2)
    group = f"test-notifier-{uuid.uuid4().hex}"
    consumer = AIOKafkaConsumer(
        topics.stage_changed,
        **consumer_kwargs(kafka_settings, client_id="test", group_id=group),
    )
    await consumer.start()
    worker = StageChangeConsumer(
        consumer=consumer,
        store=PostgresStageChangeStore(pool),
        publisher=publisher,
        rejected_topic=topics.rejected,
        retry_backoff_s=0.1,
    )
    task = asyncio.create_task(worker.run())
    try:
        [dead] = await asyncio.to_thread(
            read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=1
        )

        async def stored() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM received_stage_changes WHERE contact_id = $1", contact
            )
            return bool(count == 1)

        await _wait_for(stored)
        partitions = consumer.assignment()

        async def committed_past_all_three() -> bool:
            offsets = [await consumer.committed(tp) or 0 for tp in partitions]
            return sum(offsets) == 3

        await _wait_for(committed_past_all_three)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
        await producer.stop()
        rows = await pool.fetch(
            "SELECT id, to_stage FROM received_stage_changes WHERE contact_id = $1", contact
        )
        await pool.close()
    assert [(row["id"], row["to_stage"]) for row in rows] == [(change.id, "lead")]
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert (rejected.service, rejected.origin, rejected.original) == (
        "notifier",
        topics.stage_changed,
        "{oops",
    )
