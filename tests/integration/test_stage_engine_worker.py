"""The stage-engine worker as a real process against a real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from funnel_shared.events import StageChanged, stage_change_id
from funnel_shared.settings import KafkaSettings

from tests.contact_events import START, contact_event, produce
from tests.integration.conftest import StageEngineFactory
from tests.kafka_reader import read_records

pytestmark = pytest.mark.integration


async def test_a_scripted_journey_produces_exactly_the_expected_stage_changes_in_order(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    contact = f"user-{uuid.uuid4().hex}"
    journey = [
        contact_event(contact, "page", name="Pricing", at=START),
        contact_event(contact, "track", "Signed Up", at=START + timedelta(minutes=1)),
    ]
    worker = stage_engine_worker()
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], journey)

    records = await asyncio.to_thread(
        read_records,
        kafka_settings.bootstrap_servers,
        topic_env["TOPIC_STAGE_CHANGED"],
        expected=1,
        timeout_s=60,
    )
    changes = [StageChanged.model_validate_json(record.value) for record in records]
    assert [(c.funnel, c.from_stage, c.to_stage) for c in changes] == [
        ("lifecycle", None, "lead")
    ], worker.log_tail()
    assert changes[0].id == stage_change_id(
        funnel="lifecycle", contact_id=contact, message_id=journey[1].message_id, to_stage="lead"
    )
