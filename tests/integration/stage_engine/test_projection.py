"""The projection against a real broker and PostgreSQL: idempotent replays and restarts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from funnel_devstack.processes import free_port
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.kafka_reader import read_records
from tests.support.processes import http_get
from tests.support.projection_helpers import count_rows, fetch_rows, running_projection, wait_until
from tests.support.stage_outputs import blocked, journey, merged, publish_outputs, stalled

pytestmark = pytest.mark.integration

STAGES = ["visitor", "lead", "prospect", "customer"]
STEPS = ["signed_up", "demoed", "ordered"]
HOUR = timedelta(hours=1)


async def _snapshot(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every projected row outside the sentinel funnel, in a stable order."""
    return {
        "history": await fetch_rows(
            database_url, "SELECT * FROM stage_history WHERE funnel <> 'sentinel' ORDER BY id"
        ),
        "current": await fetch_rows(
            database_url,
            "SELECT * FROM contact_stages WHERE funnel <> 'sentinel' ORDER BY contact_id, funnel",
        ),
        "blocked": await fetch_rows(database_url, "SELECT * FROM stage_blocks ORDER BY id"),
        "stalls": await fetch_rows(database_url, "SELECT * FROM stage_stalls ORDER BY id"),
        "merges": await fetch_rows(database_url, "SELECT * FROM contact_merges ORDER BY id"),
    }


async def test_delivering_the_same_stage_changes_twice_leaves_the_same_rows(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> None:
    contact = f"contact-{uuid.uuid4().hex}"
    moves = [("visitor", START), ("lead", START + HOUR), ("prospect", START + 2 * HOUR)]
    changes = journey(contact, "journey", moves, stages=STAGES)
    outputs = [
        merged(
            contact,
            f"anon-{contact}",
            "journey",
            stage="visitor",
            anonymous_stage="visitor",
            at=START,
        ),
        *changes,
        *journey(contact, "steps", [("signed_up", START + HOUR)], stages=STEPS),
        blocked(contact, "steps", current="signed_up", attempted="ordered", at=START + 2 * HOUR),
        stalled(changes[-1], after=timedelta(days=3)),
    ]
    group = f"test-projection-{uuid.uuid4().hex[:12]}"
    async with running_projection(
        kafka_settings, database_url=projection_database, topic=topics.stage_changed, group_id=group
    ):
        await publish_outputs(kafka_settings, topics.stage_changed, outputs)

        async def all_stored() -> bool:
            counts = [
                await count_rows(projection_database, f"SELECT count(*) FROM {table}")
                for table in ("stage_history", "stage_blocks", "stage_stalls", "contact_merges")
            ]
            return counts == [4, 1, 1, 1]

        await wait_until(all_stored, "the first delivery to be stored")
        before = await _snapshot(projection_database)

        # The same records again (an engine replay), then a sentinel for the same contact,
        # so on the same partition: once it is stored, the replay has been processed.
        sentinel = journey(contact, "sentinel", [("visitor", START)], stages=STAGES)
        await publish_outputs(kafka_settings, topics.stage_changed, [*outputs, *sentinel])

        async def sentinel_stored() -> bool:
            query = "SELECT count(*) FROM stage_history WHERE funnel = 'sentinel'"
            return await count_rows(projection_database, query) == 1

        await wait_until(sentinel_stored, "the sentinel after the replay")
        after = await _snapshot(projection_database)

    assert after == before
    [current] = [row for row in after["current"] if row["funnel"] == "journey"]
    # Replaying "visitor" and "lead" did not move the contact back, nor end its stall.
    assert (current["current_stage"], current["furthest_stage"]) == ("prospect", "prospect")
    assert current["entered_at"] == START + 2 * HOUR
    assert current["stalled_at"] == START + 2 * HOUR + timedelta(days=3)


async def test_a_restarted_projection_resumes_after_the_last_stored_batch(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> None:
    contact = f"contact-{uuid.uuid4().hex}"
    changes = journey(
        contact,
        "journey",
        [(stage, START + index * HOUR) for index, stage in enumerate(STAGES)],
        stages=STAGES,
    )
    first, second = changes[:2], changes[2:]
    group = f"test-projection-{uuid.uuid4().hex[:12]}"
    args = {"database_url": projection_database, "topic": topics.stage_changed, "group_id": group}

    async with running_projection(kafka_settings, **args) as projection:
        await publish_outputs(kafka_settings, topics.stage_changed, first)

        async def first_committed() -> bool:
            return sum(projection.committed.values()) == len(first)

        await wait_until(first_committed, "the first records to be stored and committed")

    # Published while no projection runs; the next one must pick up exactly these.
    await publish_outputs(kafka_settings, topics.stage_changed, second)
    async with running_projection(kafka_settings, **args) as restarted:

        async def caught_up() -> bool:
            query = "SELECT count(*) FROM stage_history WHERE contact_id = $1"
            return await count_rows(projection_database, query, contact) == len(changes)

        await wait_until(caught_up, "the records published during the restart")
        assert restarted.records_seen == len(second)

    [current] = await fetch_rows(
        projection_database, "SELECT * FROM contact_stages WHERE contact_id = $1", contact
    )
    assert (current["current_stage"], current["last_change_id"]) == ("customer", changes[-1].id)


async def test_without_postgresql_the_worker_still_processes_and_readyz_says_why(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    # Nothing listens there: the projection cannot connect, the agent must not care.
    worker = stage_engine_worker(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    worker.start()
    contact = f"user-{uuid.uuid4().hex}"

    async def says_projection() -> bool:
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited\n{worker.log_tail()}")
        status, body = await asyncio.to_thread(http_get, worker.url + "/readyz")
        return status == 503 and "projection" in body

    await wait_until(says_projection, "/readyz to blame the projection", timeout_s=120)
    await produce(
        kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], [contact_event(contact, "page")]
    )
    [record] = await asyncio.to_thread(
        read_records,
        kafka_settings.bootstrap_servers,
        topic_env["TOPIC_STAGE_CHANGED"],
        expected=1,
        timeout_s=90,
    )
    assert record.key == contact.encode(), worker.log_tail()
    status, body = await asyncio.to_thread(http_get, worker.url + "/readyz")
    assert status == 503 and "projection" in body
