"""kill -9 between sending a claimed batch and recording it: each is sent at most once
more, under the same webhook-id, and none is lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from funnel_shared.kafka import AiokafkaPublisher, producer_kwargs
from funnel_shared.settings import KafkaSettings

from tests.conftest import unique
from tests.e2e.notifier_processes import (
    NotifierProcess,
    migrate_notifier,
    start_notifier_process,
    wait_ready,
)
from tests.notifier_support import (
    WebhookReceiver,
    eventually,
    new_secret,
    publish_change,
    stage_change,
    write_rules,
)

pytestmark = pytest.mark.e2e

# Delayed, so the follow-ups are stored before the test blocks the outbox table,
# and all due at once (one event time), so one claim takes the whole batch.
RULES = """
funnel: hourglass
rules:
  - id: crm.later
    trigger: entered
    stage: closed
    after: 6s
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
"""

CONTACTS = 6

# The dispatcher's recording transaction, waiting to add its events to the outbox.
RECORDING_BLOCKED = (
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'followup_events'::regclass"
)


@pytest.fixture
def env(
    kafka_env: dict[str, str], topic_env: dict[str, str], database_url: str, tmp_path: Path
) -> dict[str, str]:
    rules = tmp_path / "rules"
    write_rules(rules, RULES)
    values = {
        **kafka_env,
        **topic_env,
        "DATABASE_URL": database_url,
        "NOTIFIER_GROUP_ID": unique("notifier"),
        "NOTIFIER_RULES_DIR": str(rules),
        "NOTIFIER_POLL_INTERVAL_S": "0.2",
        "NOTIFIER_ATTEMPT_TIMEOUT_S": "2",
        "NOTIFIER_CLAIM_GRACE_S": "1",
        "NOTIFIER_BATCH_SIZE": "20",
    }
    migrate_notifier(values)
    return values


@pytest.fixture
def processes() -> Iterator[list[NotifierProcess]]:
    started: list[NotifierProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[AiokafkaPublisher]:
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="e2e"))
    await producer.start()
    try:
        yield AiokafkaPublisher(producer)
    finally:
        await producer.stop()


async def _start(env: dict[str, str], logs: Path, name: str) -> NotifierProcess:
    process = start_notifier_process(env, logs, name)
    await asyncio.to_thread(wait_ready, process)
    return process


async def test_kill_9_after_a_batch_was_answered_and_before_it_was_recorded_resends_it_once(
    env: dict[str, str],
    processes: list[NotifierProcess],
    publisher: AiokafkaPublisher,
    tmp_path: Path,
) -> None:
    secret = new_secret()
    dsn = env["DATABASE_URL"]
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(CONTACTS)]
    db = await asyncpg.connect(dsn)
    try:
        with WebhookReceiver(secret) as receiver:
            env = {**env, "HOOK_URL": receiver.url, "HOOK_SECRET": secret}
            processes.append(first := await _start(env, tmp_path / "logs", "first"))
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

            processes.append(await _start(env, tmp_path / "logs", "second"))

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
