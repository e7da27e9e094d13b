"""The notifier as real processes: kill -9 at the two risky moments, two replicas, admin API."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from funnel_shared.kafka import AiokafkaPublisher

from tests.e2e.conftest import NotifierEnv
from tests.support.access import AUTH_HEADERS
from tests.support.notifier_processes import (
    NotifierProcesses,
    with_hook,
)
from tests.support.notifier_support import (
    Reply,
    WebhookReceiver,
    eventually,
    publish_change,
    stage_change,
    webhook_rules,
)

pytestmark = pytest.mark.e2e

RULES = webhook_rules("hourglass", ("crm", "closed"))


@pytest.fixture
async def notifier_env(notifier_env_for: NotifierEnv) -> dict[str, str]:
    quick_retries = {
        "NOTIFIER_BACKOFF_BASE_S": "0.2",
        "NOTIFIER_BACKOFF_MAX_S": "1",
        "NOTIFIER_RETRY_BACKOFF_S": "0.2",
    }
    return await notifier_env_for(RULES, **quick_retries)


async def _count(dsn: str, sql: str, *args: object) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(sql, *args))
    finally:
        await connection.close()


async def test_kill_9_before_the_commit_and_during_dispatch_loses_and_repeats_nothing(
    notifier_env: dict[str, str],
    processes: NotifierProcesses,
    publisher: AiokafkaPublisher,
) -> None:
    dsn = notifier_env["DATABASE_URL"]
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(5)]
    with WebhookReceiver(script=[Reply(hang=True)]) as receiver:
        # A long attempt timeout: the kill must land while the attempt is still in flight,
        # however slow the machine. The third process waits out the lease (timeout + grace).
        env = {**with_hook(notifier_env, receiver), "NOTIFIER_ATTEMPT_TIMEOUT_S": "8"}
        first = await processes.start(env, "first")

        # 1. Consumed, not stored, not committed: the insert waits on our table lock.
        locker = await asyncpg.connect(dsn)
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE followups IN ACCESS EXCLUSIVE MODE")
        for contact in contacts:
            change = stage_change(contact, funnel="hourglass", to_stage="closed")
            await publish_change(publisher, notifier_env["TOPIC_STAGE_CHANGED"], change)
        # The consumer's transaction has written the stage change and waits for followups.
        mid_store = (
            "SELECT count(*) FROM pg_locks WHERE pid <> pg_backend_pid() AND granted"
            " AND relation = 'received_stage_changes'::regclass AND mode = 'RowExclusiveLock'"
        )
        await eventually(lambda: locker.fetchval(mid_store), what="the consumer blocked mid-store")
        first.kill_hard()
        await transaction.rollback()
        await locker.close()
        assert await _count(dsn, "SELECT count(*) FROM received_stage_changes") == 0

        # 2. Redelivered and stored; killed while the receiver holds the first webhook.
        second = await processes.start({**env, "NOTIFIER_BATCH_SIZE": "1"}, "second")
        await eventually(receiver.held.is_set, timeout_s=90, what="a webhook in flight")
        second.kill_hard()
        receiver.release()  # The held request ends unanswered.

        # 3. A fresh process sends the rest and takes over the abandoned attempt.
        await processes.start(env, "third")

        async def all_sent() -> bool:
            sent = "SELECT count(*) FROM followups WHERE status = 'sent'"
            return await _count(dsn, sent) == len(contacts)

        await eventually(all_sent, timeout_s=90, what="every follow-up sent")

    connection = await asyncpg.connect(dsn)
    try:
        ids = {r["id"] for r in await connection.fetch("SELECT id::text AS id FROM followups")}
        outcomes = await connection.fetch(
            "SELECT array_agg(outcome ORDER BY number) AS o FROM followup_attempts"
            " GROUP BY followup_id"
        )
    finally:
        await connection.close()
    acknowledged = receiver.acknowledged()
    assert set(acknowledged) == ids and len(ids) == len(contacts)
    assert set(acknowledged.values()) == {1}, acknowledged  # None acknowledged twice.
    held_id = receiver.requests[0].headers["webhook-id"]
    assert receiver.ids().count(held_id) == 2  # Re-sent under the same webhook-id.
    assert sorted(tuple(row["o"]) for row in outcomes) == sorted(
        [("abandoned", "succeeded")] + [("succeeded",)] * (len(contacts) - 1)
    )


async def test_two_replicas_on_one_database_deliver_each_follow_up_exactly_once(
    notifier_env: dict[str, str],
    processes: NotifierProcesses,
    publisher: AiokafkaPublisher,
) -> None:
    contacts = [f"c-{uuid.uuid4().hex}" for _ in range(24)]
    with WebhookReceiver(default=Reply(delay_s=0.05)) as receiver:
        env = {**with_hook(notifier_env, receiver), "NOTIFIER_BATCH_SIZE": "3"}
        await asyncio.gather(
            processes.start(env, "one"),
            processes.start(env, "two"),
        )
        for contact in contacts:
            change = stage_change(contact, funnel="hourglass", to_stage="closed")
            await publish_change(publisher, notifier_env["TOPIC_STAGE_CHANGED"], change)
        await eventually(
            lambda: len(receiver.acknowledged()) == len(contacts), timeout_s=90, what="all sent"
        )
        dsn = notifier_env["DATABASE_URL"]
        sent = "SELECT count(*) FROM followups WHERE status = 'sent'"

        async def all_marked_sent() -> bool:
            return await _count(dsn, sent) == len(contacts)

        await eventually(all_marked_sent, what="all marked sent")
    assert set(receiver.acknowledged().values()) == {1}
    assert len(receiver.requests) == len(contacts)


async def test_admin_api_lists_shows_and_retries_a_dead_follow_up(
    notifier_env: dict[str, str],
    processes: NotifierProcesses,
    publisher: AiokafkaPublisher,
) -> None:
    contact = f"c-{uuid.uuid4().hex}"
    with WebhookReceiver(script=[Reply(410)]) as receiver:
        env = with_hook(notifier_env, receiver)
        notifier = await processes.start(env, "admin")
        change = stage_change(contact, funnel="hourglass", to_stage="closed")
        await publish_change(publisher, notifier_env["TOPIC_STAGE_CHANGED"], change)
        async with httpx.AsyncClient(base_url=notifier.url, headers=AUTH_HEADERS) as client:

            async def listed(status: str) -> list[dict[str, object]]:
                response = await client.get(
                    "/v1/followups", params={"status": status, "contact": contact, "rule": "crm"}
                )
                assert response.status_code == 200, response.text
                return list(response.json()["items"])

            await eventually(lambda: _has(listed("dead")), what="a dead follow-up listed")
            [dead] = await listed("dead")
            detail = (await client.get(f"/v1/followups/{dead['id']}")).json()
            assert detail["record"]["id"] == change.id
            assert [(a["outcome"], a["statusCode"]) for a in detail["attemptsMade"]] == [
                ("failed", 410)
            ]
            assert (await client.post(f"/v1/followups/{dead['id']}/retry")).status_code == 200
            await eventually(lambda: _has(listed("sent")), what="sent after the retry")
            again = await client.post(f"/v1/followups/{dead['id']}/retry")
            assert again.status_code == 409
            assert (await client.get(f"/v1/followups/{uuid.uuid4()}")).status_code == 404
            metrics = (await client.get("/metrics")).text
            assert 'funnel_notifier_followups_total{status="sent"} 1.0' in metrics
            assert 'funnel_notifier_followups_total{status="dead"} 1.0' in metrics
            assert "funnel_notifier_queue_depth" in metrics
            assert "funnel_notifier_delivery_latency_seconds_count 1.0" in metrics
            assert (await client.get("/readyz")).status_code == 200
    assert receiver.ids() == [dead["id"], dead["id"]]


async def _has(items: object) -> bool:
    return bool(await items)  # type: ignore[misc]
