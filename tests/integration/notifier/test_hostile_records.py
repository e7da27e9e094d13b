"""Records PostgreSQL refuses for their content fail only themselves; a database that is
down or read-only is retried without loss. Real broker, real PostgreSQL, real receiver."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from funnel_shared.events import RejectedRecord, StageChanged
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.notifier.conftest import StartHooked
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import (
    contacts_on_one_partition,
    eventually,
    publish_change,
    stage_change,
    webhook_rules,
)

pytestmark = pytest.mark.integration

# Every contact entering lead gets a webhook now and another in 30 days.
RULES = webhook_rules("lifecycle", ("hook.lead", "lead"), ("hook.lead.later", "lead", "30d"))

LATER_CONTACTS = 12


def _bad_records(anchor: str) -> dict[str, tuple[StageChanged, str]]:
    """Well-formed stage changes whose content the notifier cannot store, with the start
    of the reason each one's dead letter must give."""
    return {
        "U+0000 in a trait": (
            stage_change(anchor, traits={"name": "Ann\u0000"}),
            "refused by the database (22P05 UntranslatableCharacterError)",
        ),
        "U+0000 in the contact id": (
            stage_change(f"c-\x00-{uuid.uuid4().hex}"),
            "refused by the database (22021 CharacterNotInRepertoireError)",
        ),
        "a 3,000-character contact id": (
            stage_change(secrets.token_hex(1500)),  # Random: no index compression saves it.
            "refused by the database (54000 ProgramLimitExceededError)",
        ),
        "an event time of 9999-12-20 plus 30 days": (
            stage_change(anchor, event_time=datetime(9999, 12, 20, tzinfo=UTC)),
            "follow-up due time out of range: rule hook.lead.later",
        ),
    }


async def test_records_the_database_refuses_are_dead_lettered_and_later_contacts_get_theirs(
    hooked_notifier: StartHooked,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    anchor = f"c-{uuid.uuid4().hex}"
    bad = _bad_records(anchor)
    later = contacts_on_one_partition(LATER_CONTACTS, kafka_settings.partitions, first=anchor)
    # One partition, in this order, all on the topic before the notifier starts: one
    # good contact, the bad records, then the later contacts (one fetch, most likely).
    topic = topics.stage_changed
    await publish_change(publisher, topic, stage_change(anchor))
    for change, _ in bad.values():
        await publish_change(publisher, topic, change, key=anchor)
    for contact in later:
        await publish_change(publisher, topic, stage_change(contact))
    good = [anchor, *later]

    async with hooked_notifier(RULES) as hooked:
        receiver, runtime = hooked.receiver, hooked.runtime
        await eventually(
            lambda: len(receiver.acknowledged()) == len(good), what="every good contact's webhook"
        )
        records = await asyncio.to_thread(
            read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=len(bad)
        )
        # Never retried: the consumer did not treat a bad record as an outage.
        assert runtime.worker.store_failures == 0
        assert await runtime.ready() is None
        refused = runtime.metrics.registry.get_sample_value(
            "funnel_notifier_rejected_records_total", {"why": "database_refused"}
        )
        out_of_range = runtime.metrics.registry.get_sample_value(
            "funnel_notifier_rejected_records_total", {"why": "due_time_out_of_range"}
        )
    assert (refused, out_of_range) == (3, 1)

    followups = await db.fetch(
        "SELECT id::text, contact_id, rule_id FROM followups WHERE contact_id = ANY($1)", good
    )
    assert sorted((r["contact_id"], r["rule_id"]) for r in followups) == sorted(
        (contact, rule) for contact in good for rule in ("hook.lead", "hook.lead.later")
    )
    assert set(receiver.acknowledged()) == {
        r["id"] for r in followups if r["rule_id"] == "hook.lead"
    }
    assert set(receiver.acknowledged().values()) == {1}

    dead_letters = [RejectedRecord.model_validate_json(record.value) for record in records]
    assert len(dead_letters) == len(bad)
    by_change_id = {StageChanged.model_validate_json(d.original).id: d for d in dead_letters}
    for what, (change, reason) in bad.items():
        dead = by_change_id[change.id]
        assert (dead.service, dead.origin, dead.key) == ("notifier", topic, anchor), what
        [error] = dead.errors
        assert error.startswith(reason), (what, error)
    # The refused records left nothing behind.
    stored = await db.fetchval(
        "SELECT count(*) FROM received_stage_changes WHERE id = ANY($1)",
        [change.id for change, _ in bad.values()],
    )
    assert stored == 0


async def test_a_read_only_database_is_retried_without_loss_and_readyz_says_why(
    hooked_notifier: StartHooked,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    migrated_database: str,
    postgres_admin_dsn: str,
) -> None:
    name = await _database_name(migrated_database)
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(5)]
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        async with hooked_notifier(RULES) as hooked:
            receiver, runtime = hooked.receiver, hooked.runtime
            await eventually(lambda: runtime.worker.assigned, what="partitions assigned")
            # New sessions start read-only; the notifier's current ones are ended.
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            await _end_sessions(admin, name)
            for contact in contacts:
                await publish_change(publisher, topics.stage_changed, stage_change(contact))

            async def says_read_only() -> bool:
                why = await runtime.ready()
                return why is not None and "ReadOnlySQLTransactionError" in why

            await eventually(says_read_only, what="/readyz naming the read-only database")
            assert not receiver.requests
            failures = runtime.worker.store_failures
            assert failures > 0

            await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            await _end_sessions(admin, name)
            await eventually(
                lambda: len(receiver.acknowledged()) == len(contacts), what="every webhook"
            )
            assert set(receiver.acknowledged().values()) == {1}

            async def ready_again() -> bool:
                return await runtime.ready() is None

            await eventually(ready_again, what="/readyz ready again")
            rejected = runtime.metrics.registry.get_sample_value(
                "funnel_notifier_rejected_records_total", {"why": "database_refused"}
            )
        assert rejected == 0  # An outage is never a bad record.
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()


async def _database_name(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("SELECT current_database()"))
    finally:
        await connection.close()


async def _end_sessions(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
