"""The notifier's consumer against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from funnel_notifier.main import migrate
from funnel_shared.events import RejectedRecord
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pydantic import SecretStr

from tests.integration.notifier.conftest import StartConsumer
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import eventually, publish_change, publish_raw, stage_change

pytestmark = pytest.mark.integration


async def test_migrations_are_idempotent(migrated_database: str) -> None:
    await asyncio.to_thread(migrate, DatabaseSettings(database_url=SecretStr(migrated_database)))
    connection = await asyncpg.connect(migrated_database)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version_notifier")
    finally:
        await connection.close()
    assert version == "0002"


async def test_redelivered_stage_change_is_stored_once_and_garbage_is_dead_lettered(
    stage_change_consumer: StartConsumer,
    publisher: AiokafkaPublisher,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    db: asyncpg.Pool,
) -> None:
    contact = f"contact-{uuid.uuid4().hex}"
    change = stage_change(contact)
    await publish_change(publisher, topics.stage_changed, change)
    await publish_change(publisher, topics.stage_changed, change)  # A redelivery.
    await publish_raw(publisher, topics.stage_changed, key=contact, value=b"{oops")

    async with stage_change_consumer(f"test-notifier-{uuid.uuid4().hex}") as running:
        [dead] = await asyncio.to_thread(
            read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=1
        )

        async def stored() -> bool:
            count = await db.fetchval(
                "SELECT count(*) FROM received_stage_changes WHERE contact_id = $1", contact
            )
            return bool(count == 1)

        await eventually(stored, what="the change stored")

        async def committed_past_all_three() -> bool:
            return await running.committed_total() == 3

        await eventually(committed_past_all_three, what="committed past all three")
    rows = await db.fetch(
        "SELECT id, to_stage FROM received_stage_changes WHERE contact_id = $1", contact
    )
    assert [(row["id"], row["to_stage"]) for row in rows] == [(change.id, "lead")]
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert (rejected.service, rejected.origin, rejected.original) == (
        "notifier",
        topics.stage_changed,
        "{oops",
    )
