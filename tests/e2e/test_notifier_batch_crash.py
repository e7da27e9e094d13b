"""kill -9 between sending a claimed batch and recording it: each is sent at most once
more, under the same webhook-id, and none is lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from funnel_shared.kafka import AiokafkaPublisher

from tests.e2e.conftest import NotifierEnv
from tests.support.notifier_processes import NotifierProcesses, with_hook
from tests.support.notifier_support import (
    WebhookReceiver,
    eventually,
    publish_change,
    stage_change,
    webhook_rules,
)

pytestmark = pytest.mark.e2e

# Delayed, so the follow-ups are stored before the test blocks the outbox table,
# and all due at once (one event time), so one claim takes the whole batch.
RULES = webhook_rules("hourglass", ("crm.later", "closed", "6s"))

CONTACTS = 6

# The dispatcher's recording transaction, waiting to add its events to the outbox.
RECORDING_BLOCKED = (
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'followup_events'::regclass"
)


@pytest.fixture
async def env(notifier_env_for: NotifierEnv) -> dict[str, str]:
    return await notifier_env_for(RULES, NOTIFIER_BATCH_SIZE="20")


async def test_kill_9_after_a_batch_was_answered_and_before_it_was_recorded_resends_it_once(
    env: dict[str, str],
    processes: NotifierProcesses,
    publisher: AiokafkaPublisher,
) -> None:
    dsn = env["DATABASE_URL"]
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(CONTACTS)]
    db = await asyncpg.connect(dsn)
    try:
        with WebhookReceiver() as receiver:
            env = with_hook(env, receiver)
            first = await processes.start(env, "first")
            when = datetime.now(UTC)
            for contact in contacts:
                change = stage_change(
                    contact, funnel="hourglass", to_stage="closed", event_time=when
                )
                await publish_change(publisher, env["TOPIC_STAGE_CHANGED"], change)

            async def stored() -> bool:
                return bool(await db.fetchval("SELECT count(*) FROM followups") == CONTACTS)

            await eventually(stored, what="the follow-ups stored")
            # Hold the outbox: the batch is claimed and sent, its outcomes can't commit.
            transaction = db.transaction()
            await transaction.start()
            await db.execute("LOCK TABLE followup_events IN SHARE MODE")
            assert not receiver.requests, "sent before the test held the outbox: a slow machine"
            await eventually(
                lambda: len(receiver.acknowledged()) == CONTACTS, what="the batch answered 2xx"
            )
            await eventually(
                lambda: db.fetchval(RECORDING_BLOCKED), what="the recording transaction waiting"
            )
            first.kill_hard()
            await transaction.rollback()
            unrecorded = await db.fetchval("SELECT count(*) FROM followups WHERE status='sent'")
            assert unrecorded == 0

            await processes.start(env, "second")

            async def all_sent() -> bool:
                sent = "SELECT count(*) FROM followups WHERE status = 'sent'"
                return bool(await db.fetchval(sent) == CONTACTS)

            await eventually(all_sent, timeout_s=90, what="every follow-up sent")
        ids = {r["id"] for r in await db.fetch("SELECT id::text AS id FROM followups")}
        outcomes = await db.fetch(
            "SELECT array_agg(outcome ORDER BY number) AS o FROM followup_attempts"
            " GROUP BY followup_id"
        )
    finally:
        await db.close()
    acknowledged = receiver.acknowledged()
    assert set(acknowledged) == ids and len(ids) == CONTACTS
    assert set(acknowledged.values()) == {2}, acknowledged  # Once more, same webhook-id.
    assert [tuple(row["o"]) for row in outcomes] == [("abandoned", "succeeded")] * CONTACTS
