"""One event from HTTP, through the broker and the stage engine, to the notifier's database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from funnel_shared.events import RejectedRecord, StageChanged
from funnel_shared.kafka import producer_kwargs
from funnel_shared.settings import KafkaSettings

from tests.e2e.conftest import WRITE_KEY, RunningSystem, _log_tail
from tests.support.access import AUTH_HEADERS
from tests.support.kafka_reader import Record, TopicReader

pytestmark = pytest.mark.e2e


async def _wait_for_row(database_url: str, contact_id: str, timeout_s: float) -> asyncpg.Record:
    connection = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            row = await connection.fetchrow(
                "SELECT * FROM received_stage_changes WHERE contact_id = $1", contact_id
            )
            if row is not None:
                return row
            await asyncio.sleep(0.25)
    finally:
        await connection.close()
    raise AssertionError(f"no stage change stored for {contact_id} within {timeout_s}s")


def _records_of(
    system: RunningSystem,
    topic: str,
    contact: str,
    *,
    expected: int | None = None,
    until: Callable[[list[Record]], bool] | None = None,
) -> list[Record]:
    """The records keyed by ``contact`` on one of the system's topics, the tests' shared ones."""

    def mine(records: list[Record]) -> list[Record]:
        return [record for record in records if record.key == contact.encode()]

    def done(records: list[Record]) -> bool:
        if until is not None:
            return until(mine(records))
        return len(mine(records)) >= (expected or 1)

    reader = TopicReader(system.bootstrap_servers, system.topics[topic])
    try:
        found = reader.read_until(done, timeout_s=60)
    finally:
        reader.close()
    assert found, f"{topic}: no records for {contact} in time"
    return mine(reader.records)


async def _lifecycle_view(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    response = await client.get(url)
    if response.status_code != 200:
        return None
    funnels = [f for f in response.json()["funnels"] if f["funnel"] == "lifecycle"]
    return funnels[0] if funnels else None


async def test_a_sign_up_posted_over_http_ends_as_a_stored_stage_change(
    running_system: RunningSystem,
) -> None:
    contact = f"user-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=running_system.urls["ingest"]) as client:
        response = await client.post(
            "/v1/track",
            json={"userId": contact, "event": "Signed Up", "context": {"traits": {"name": "Zoë"}}},
            auth=(WRITE_KEY, ""),
        )
    assert response.status_code == 200, response.text
    message_id = response.json()["messageId"]

    try:
        row = await _wait_for_row(running_system.database_url, contact, timeout_s=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_log_tail(running_system.logs)}") from exc
    assert (row["funnel"], row["from_stage"], row["to_stage"]) == ("lifecycle", None, "lead")
    assert row["cause_message_id"] == message_id

    [record] = await asyncio.to_thread(
        _records_of, running_system, "TOPIC_STAGE_CHANGED", contact, expected=1
    )
    change = StageChanged.model_validate_json(record.value)
    assert record.key == contact.encode()
    assert (change.id, change.contact_id, change.to_stage) == (row["id"], contact, "lead")
    assert change.traits == {"name": "Zoë"}
    assert record.headers["ce_id"] == change.id
    assert record.headers["ce_type"] == "funnel.stage_changed"
    assert record.headers["ce_source"] == "/funnel/stage-engine"
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["content-type"] == "application/json"


async def test_the_stage_engine_says_why_a_contact_is_where_it_is(
    running_system: RunningSystem,
) -> None:
    contact = f"user-{uuid.uuid4().hex}"
    engine = running_system.urls["stage-engine"]
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        response = await client.post(
            running_system.urls["ingest"] + "/v1/track",
            json={"userId": contact, "event": "Signed Up"},
            auth=(WRITE_KEY, ""),
        )
        assert response.status_code == 200, response.text
        message_id = response.json()["messageId"]
        deadline = asyncio.get_running_loop().time() + 90
        # The contact can be known in another funnel a moment before its lifecycle change
        # is projected: wait for the lifecycle entry itself.
        lifecycle = await _lifecycle_view(client, f"{engine}/v1/contacts/{contact}")
        while lifecycle is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.25)
            lifecycle = await _lifecycle_view(client, f"{engine}/v1/contacts/{contact}")
        assert lifecycle is not None, _log_tail(running_system.logs)
        assert (lifecycle["currentStage"], lifecycle["furthestStage"]) == ("lead", "lead")
        [change] = lifecycle["history"]
        assert (change["ruleId"], change["causeMessageId"]) == ("signed-up", message_id)

        page = await client.get(f"{engine}/funnels/lifecycle")
        assert page.status_code == 200
        assert page.text.count('class="bar"') == 6


async def test_every_service_reports_healthy_and_ready(running_system: RunningSystem) -> None:
    async with httpx.AsyncClient() as client:
        for name, url in running_system.urls.items():
            for path in ("/healthz", "/readyz"):
                response = await client.get(url + path)
                assert response.status_code == 200, f"{name}{path}: {response.text}"


async def test_an_invalid_event_is_refused_and_never_reaches_the_broker(
    running_system: RunningSystem,
) -> None:
    contact = f"user-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=running_system.urls["ingest"]) as client:
        refused = await client.post("/v1/track", json={"userId": contact}, auth=(WRITE_KEY, ""))
        accepted = await client.post(
            "/v1/track", json={"userId": contact, "event": "Product Viewed"}, auth=(WRITE_KEY, "")
        )
    assert refused.status_code == 400
    assert accepted.status_code == 200
    accepted_id = accepted.json()["messageId"]
    # Both are keyed by the contact, so a published refusal would sit on the same partition
    # ahead of the accepted event, which ingest acknowledged only once it was stored.
    records = await asyncio.to_thread(
        _records_of,
        running_system,
        "TOPIC_CONTACT_EVENTS",
        contact,
        until=lambda mine: accepted_id in {r.headers["ce_id"] for r in mine},
    )
    assert [record.headers["ce_id"] for record in records] == [accepted_id]


async def test_a_poison_record_is_dead_lettered_and_the_partition_keeps_moving(
    running_system: RunningSystem, kafka_settings: KafkaSettings
) -> None:
    topic_env = running_system.topics
    contact = f"user-{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="e2e"))
    await producer.start()
    try:
        # Same key, so the same partition as the valid event that follows it.
        await producer.send_and_wait(
            topic_env["TOPIC_CONTACT_EVENTS"], key=contact.encode(), value=b"\x00 not an event"
        )
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=running_system.urls["ingest"]) as client:
        response = await client.post(
            "/v1/track", json={"userId": contact, "event": "Signed Up"}, auth=(WRITE_KEY, "")
        )
    assert response.status_code == 200

    row = await _wait_for_row(running_system.database_url, contact, timeout_s=90)
    assert row["to_stage"] == "lead"
    [dead] = await asyncio.to_thread(
        _records_of, running_system, "TOPIC_REJECTED", contact, expected=1
    )
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert (rejected.service, rejected.origin, rejected.key) == (
        "stage-engine",
        topic_env["TOPIC_CONTACT_EVENTS"],
        contact,
    )
    assert rejected.original == "\x00 not an event"
    assert rejected.errors and "ValidationError" in rejected.errors[0]
