"""Stall and merge records trigger their rules: signed webhooks to a real receiver, once."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from funnel_shared.events import FollowUpEvent
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.notifier.conftest import StartHooked
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import (
    WebhookReceiver,
    contact_merged,
    eventually,
    stage_change,
    stage_stalled,
)

pytestmark = pytest.mark.integration

RULES = """
funnel: lifecycle
rules:
  - id: sales.stalled
    trigger: stalled
    stage: prospect
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
  - id: crm.merged
    trigger: merged
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
"""


async def _followups(db: asyncpg.Pool, contact: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id::text, rule_id, stage, status FROM followups WHERE contact_id = $1", contact
    )


async def _latest_stage(db: asyncpg.Pool, contact: str) -> str | None:
    value = await db.fetchval(
        "SELECT stage FROM followup_contact_stages WHERE contact_id = $1", contact
    )
    return None if value is None else str(value)


async def _sent_once(
    db: asyncpg.Pool, receiver: WebhookReceiver, contact: str
) -> dict[str, object]:
    """Wait for the contact's one follow-up to be sent; return the webhook body."""

    async def sent() -> bool:
        rows = await _followups(db, contact)
        return [row["status"] for row in rows] == ["sent"]

    await eventually(sent, what="the follow-up sent")
    [request] = receiver.requests
    [row] = await _followups(db, contact)
    assert request.verified
    assert receiver.acknowledged() == {row["id"]: 1}
    body: dict[str, object] = json.loads(request.body)
    return body


async def test_a_stall_sends_one_signed_webhook_and_its_move_updates_the_latest_stage_once(
    hooked_notifier: StartHooked,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    async with hooked_notifier(RULES) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        stall = stage_stalled(
            contact, stage="prospect", traits={"email": "p@x.example"}, move_to="lead"
        )
        # What the stage engine publishes after a stall with moveTo: the move as a stage change.
        move = stage_change(
            contact,
            from_stage="prospect",
            to_stage="lead",
            cause_kind="stall",
            cause_message_id=stall.id,
            event_time=stall.event_time,
        )
        # The stall is redelivered; same key, same partition.
        await hooked.publish(stall, stall, move)
        # The move comes after both copies of the stall, so once it is stored both were read.
        await eventually(lambda: _is_at(db, contact, "lead"), what="the move stored")
        body = await _sent_once(db, receiver, contact)

    [row] = await _followups(db, contact)
    assert (row["rule_id"], row["stage"]) == ("sales.stalled", "prospect")
    assert body["type"] == "followup.stalled"
    data = body["data"]
    assert isinstance(data, dict)
    assert data["rule"] == {
        "id": "sales.stalled",
        "trigger": "stalled",
        "funnel": "lifecycle",
        "stage": "prospect",
    }
    assert data["stall"] == stall.model_dump(mode="json")
    # The stall itself is not a stage change; only the move that followed it was stored.
    changes = await db.fetch("SELECT id FROM received_stage_changes WHERE contact_id=$1", contact)
    assert [r["id"] for r in changes] == [move.id]
    await _lifecycle_published(kafka_settings, topics, row["id"], "stalled", "prospect")


async def test_a_merge_sends_one_signed_webhook_for_the_surviving_contact(
    hooked_notifier: StartHooked,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    anonymous = f"a-{uuid.uuid4().hex}"
    async with hooked_notifier(RULES) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        merged = contact_merged(
            contact, anonymous, current_stage="prospect", traits={"email": "u@x.example"}
        )
        # The merge moved the identified contact, so a stage change with causeKind merge follows.
        move = stage_change(
            contact,
            to_stage="prospect",
            cause_kind="merge",
            cause_message_id=merged.merge_id,
            event_time=merged.event_time,
        )
        await hooked.publish(merged, merged, move)
        await eventually(lambda: _is_at(db, contact, "prospect"), what="the move stored")
        body = await _sent_once(db, receiver, contact)

    [row] = await _followups(db, contact)
    assert (row["rule_id"], row["stage"]) == ("crm.merged", None)
    assert body["type"] == "followup.merged"
    data = body["data"]
    assert isinstance(data, dict)
    assert data["rule"] == {
        "id": "crm.merged",
        "trigger": "merged",
        "funnel": "lifecycle",
        "stage": None,
    }
    assert data["merge"] == merged.model_dump(mode="json")
    assert await db.fetchval("SELECT count(*) FROM followups WHERE contact_id=$1", anonymous) == 0
    await _lifecycle_published(kafka_settings, topics, row["id"], "merged", None)


async def _is_at(db: asyncpg.Pool, contact: str, stage: str) -> bool:
    return await _latest_stage(db, contact) == stage


async def _lifecycle_published(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    followup_id: str,
    trigger: str,
    stage: str | None,
) -> None:
    records = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.followups, expected=2
    )
    events = [FollowUpEvent.model_validate_json(record.value) for record in records]
    assert [(e.status, e.followup_id, e.trigger, e.stage) for e in events] == [
        ("scheduled", followup_id, trigger, stage),
        ("sent", followup_id, trigger, stage),
    ]
