"""E-mail, delayed nudges, record kinds and the kafka action, against real servers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from funnel_devstack.mailsink import MailSink
from funnel_devstack.processes import free_port
from funnel_shared.events import FollowUpTask, RejectedRecord, StageBlocked
from funnel_shared.kafka import AiokafkaPublisher, encode_model
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.conftest import StartNotifier
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import (
    EMAIL_RULES,
    eventually,
    publish_change,
    publish_raw,
    stage_change,
)

pytestmark = pytest.mark.integration

NUDGE_RULES = """
funnel: lifecycle
rules:
  - id: nudge
    trigger: entered
    stage: lead
    after: 2s
    unless: moved_on
    action:
      type: email
      template: nudge
      to: "{{ traits.email }}"
      from: "Funnel <hello@funnel.example>"
"""


async def _statuses(db: asyncpg.Pool, contact: str) -> list[str]:
    rows = await db.fetch("SELECT status FROM followups WHERE contact_id = $1", contact)
    return [row["status"] for row in rows]


async def test_a_welcome_email_arrives_with_its_parts_and_a_missing_variable_fails_it(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    happy, broken = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    with MailSink(directory=tmp_path / "mail", port=free_port()) as sink:
        await start_notifier(EMAIL_RULES, smtp_host=sink.host, smtp_port=sink.port)
        traits = {"email": "zoe@example.com", "name": "Zoë <b>"}
        await publish_change(publisher, topics.stage_changed, stage_change(happy, traits=traits))
        await publish_change(publisher, topics.stage_changed, stage_change(broken, traits={}))

        async def settled() -> bool:
            return await _statuses(db, happy) == ["sent"] and await _statuses(db, broken) == [
                "dead"
            ]

        await eventually(settled, what="one sent, one dead")
        [mail] = sink.messages()
    followup_id = await db.fetchval("SELECT id::text FROM followups WHERE contact_id=$1", happy)
    assert mail["To"] == "zoe@example.com"
    assert mail["Subject"] == "Welcome, Zoë <b>!"
    assert mail["Message-ID"] == f"<{followup_id}@funnel.notifier>"
    assert "Hello Zoë <b>," in mail.get_body(("plain",)).get_content()
    assert "Hello Zoë &lt;b&gt;," in mail.get_body(("html",)).get_content()
    error = await db.fetchval("SELECT last_error FROM followups WHERE contact_id=$1", broken)
    assert "recipient" in error and "email" in error


async def test_a_delayed_nudge_goes_to_who_stays_and_is_cancelled_for_who_moves_on(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    stays, moves = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    with MailSink(directory=tmp_path / "mail", port=free_port()) as sink:
        await start_notifier(NUDGE_RULES, smtp_host=sink.host, smtp_port=sink.port)
        for contact in (stays, moves):
            change = stage_change(
                contact, traits={"email": f"{contact}@example.com"}, event_time=now
            )
            await publish_change(publisher, topics.stage_changed, change)
        onward = stage_change(
            moves, from_stage="lead", to_stage="prospect", event_time=now + timedelta(seconds=1)
        )
        await publish_change(publisher, topics.stage_changed, onward)

        async def settled() -> bool:
            return await _statuses(db, stays) == ["sent"] and await _statuses(db, moves) == [
                "cancelled"
            ]

        await eventually(settled, what="nudge sent to one, cancelled for the other")
        assert [mail["To"] for mail in sink.messages()] == [f"{stays}@example.com"]
    sent_at, due_at = await db.fetchrow(
        "SELECT sent_at, due_at FROM followups WHERE contact_id = $1", stays
    )
    assert due_at == now + timedelta(seconds=2)
    assert sent_at >= due_at


async def test_records_are_told_apart_by_kind_and_only_broken_ones_are_dead_lettered(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    contact = f"c-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    blocked = StageBlocked(
        id=str(uuid.uuid4()),
        funnel="hourglass",
        funnel_version="t",
        contact_id=contact,
        current_stage="opportunity",
        attempted_stage="closed",
        rule_id="r",
        cause_message_id="m",
        event_time=now,
        processed_at=now,
    )
    raw = [
        encode_model(
            blocked, key=contact, event_id=blocked.id, event_type="t", source="/t", time=now
        ).value,
        b'{"kind": "stage_teleported", "id": "x", "contactId": "c"}',  # From a newer producer.
        b"{not json",
        b'{"kind": "stage_changed", "id": "y"}',  # Missing fields.
    ]
    for value in raw:
        await publish_raw(publisher, topics.stage_changed, key=contact, value=value)
    change = stage_change(contact, funnel="hourglass", to_stage="closed")
    await publish_change(publisher, topics.stage_changed, change)
    runtime = await start_notifier(EMAIL_RULES)

    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM received_stage_changes WHERE contact_id=$1", contact
        ),
        what="the valid stage change stored",
    )
    dead = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=2
    )
    originals = sorted(RejectedRecord.model_validate_json(r.value).original for r in dead)
    assert originals == sorted([raw[2].decode(), raw[3].decode()])
    assert await db.fetchval("SELECT count(*) FROM followups") == 0  # No rule for hourglass.
    partitions = runtime.consumer.assignment()

    async def committed_all() -> bool:
        offsets = [await runtime.consumer.committed(tp) or 0 for tp in partitions]
        return sum(offsets) == 5

    await eventually(committed_all, what="every record committed")


async def test_the_kafka_action_publishes_a_follow_up_task(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    contact = f"c-{uuid.uuid4().hex}"
    rules = f"""
funnel: lifecycle
rules:
  - id: tell-crm
    trigger: entered
    stage: customer
    action: {{type: kafka, topic: {topics.contact_events}, task: crm.call}}
"""
    await start_notifier(rules)
    change = stage_change(contact, to_stage="customer")
    await publish_change(publisher, topics.stage_changed, change)
    [record] = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.contact_events, expected=1
    )
    task = FollowUpTask.model_validate_json(record.value)
    followup_id = await db.fetchval("SELECT id::text FROM followups WHERE contact_id=$1", contact)
    assert (task.id, task.task, task.stage_change_id) == (followup_id, "crm.call", change.id)
    assert record.headers["ce_id"] == followup_id


async def test_database_down_holds_the_offsets_back_and_loses_nothing(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    postgres_admin_dsn: str,
    migrated_database: str,
    db: asyncpg.Pool,
) -> None:
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(3)]
    runtime = await start_notifier(EMAIL_RULES, smtp_port=free_port())
    await eventually(lambda: runtime.worker.assigned, what="partitions assigned")
    name = migrated_database.rpartition("/")[2]
    await db.close()
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for contact in contacts:
            await publish_change(publisher, topics.stage_changed, stage_change(contact))
        await eventually(lambda: runtime.worker.store_failures >= 2, what="storing refused")
        partitions = runtime.consumer.assignment()
        committed = [await runtime.consumer.committed(tp) for tp in partitions]
        assert not any(committed), committed
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()

    connection = await asyncpg.connect(migrated_database)
    try:

        async def all_stored() -> bool:
            count = await connection.fetchval(
                "SELECT count(*) FROM followups WHERE contact_id = ANY($1)", contacts
            )
            return bool(count == 3)

        await eventually(all_stored, what="every follow-up stored after the outage")

        async def committed_all() -> bool:
            offsets = [await runtime.consumer.committed(tp) or 0 for tp in partitions]
            return sum(offsets) == 3

        await eventually(committed_all, what="offsets committed after the outage")
    finally:
        await connection.close()
