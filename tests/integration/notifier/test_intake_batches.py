"""A fetched batch of records is stored together: duplicates, order and rejections hold."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from funnel_shared.events import RejectedRecord
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.notifier.conftest import StartHooked
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import (
    eventually,
    publish_change,
    publish_raw,
    stage_change,
    webhook_rules,
)

pytestmark = pytest.mark.integration

RULES = webhook_rules("lifecycle", ("hook.lead", "lead"), ("hook.prospect", "prospect"))


async def test_one_batch_with_a_replay_and_garbage_in_the_middle_stores_each_change_once(
    hooked_notifier: StartHooked,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    contact = f"c-{uuid.uuid4().hex}"
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    lead = stage_change(contact, to_stage="lead", event_time=earlier)
    prospect = stage_change(contact, to_stage="prospect", from_stage="lead")
    # One key, so one partition: all four are on the topic before the notifier
    # starts, and it reads them as one batch.
    await publish_change(publisher, topics.stage_changed, lead)
    await publish_raw(publisher, topics.stage_changed, key=contact, value=b"{oops")
    await publish_change(publisher, topics.stage_changed, prospect)
    await publish_change(publisher, topics.stage_changed, lead)  # Replayed after a newer one.
    async with hooked_notifier(RULES) as hooked:
        receiver, runtime = hooked.receiver, hooked.runtime

        async def committed_past_all_four() -> bool:
            tps = runtime.consumer.assignment()
            return sum([await runtime.consumer.committed(tp) or 0 for tp in tps]) == 4

        await eventually(committed_past_all_four, what="offsets committed past all four")
        await eventually(lambda: len(receiver.acknowledged()) == 2, what="both sent")
        [dead] = await asyncio.to_thread(
            read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=1
        )
    changes = await db.fetch(
        "SELECT id FROM received_stage_changes WHERE contact_id = $1 ORDER BY id", contact
    )
    assert sorted(row["id"] for row in changes) == sorted([lead.id, prospect.id])
    followups = await db.fetch(
        "SELECT id::text, stage_change_id, rule_id FROM followups WHERE contact_id = $1", contact
    )
    assert sorted((r["stage_change_id"], r["rule_id"]) for r in followups) == sorted(
        [(lead.id, "hook.lead"), (prospect.id, "hook.prospect")]
    )
    assert set(receiver.acknowledged()) == {r["id"] for r in followups}
    assert set(receiver.acknowledged().values()) == {1}
    # The replayed older change did not move the contact back.
    stage = await db.fetchval(
        "SELECT stage FROM followup_contact_stages WHERE contact_id = $1", contact
    )
    assert stage == "prospect"
    assert RejectedRecord.model_validate_json(dead.value).original == "{oops"
