"""Three notifier replicas on one database while one of them is restarted every few
seconds (SIGTERM, and SIGKILL twice) and 300 contacts' stage changes flow: every rebalance
is survived, each follow-up is stored once and each webhook-id delivered once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from funnel_shared.kafka import AiokafkaPublisher

from tests.e2e.conftest import NotifierEnv
from tests.support.notifier_processes import NotifierProcesses, with_hook
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

CONTACTS = 300
RESTARTS = 5
KILLED = {1, 3}  # Restarts that begin with SIGKILL; the others with SIGTERM.


async def test_three_replicas_one_restarting_store_each_follow_up_once_and_deliver_it_once(
    notifier_env_for: NotifierEnv,
    processes: NotifierProcesses,
    publisher: AiokafkaPublisher,
) -> None:
    env = await notifier_env_for(RULES, NOTIFIER_BATCH_SIZE="5", NOTIFIER_RETRY_BACKOFF_S="0.2")
    dsn, topic = env["DATABASE_URL"], env["TOPIC_STAGE_CHANGED"]
    changes = [
        stage_change(f"c-{uuid.uuid4().hex}", funnel="hourglass", to_stage="closed")
        for _ in range(CONTACTS)
    ]
    with WebhookReceiver(default=Reply(delay_s=0.01)) as receiver:
        env = with_hook(env, receiver)
        steady = await asyncio.gather(processes.start(env, "one"), processes.start(env, "two"))
        restarted = await processes.start(env, "three-0")

        async def flow() -> None:
            for start in range(0, CONTACTS, 10):  # About 15 s of stage changes.
                for change in changes[start : start + 10]:
                    await publish_change(publisher, topic, change)
                await asyncio.sleep(0.5)

        async def chaos() -> list[str]:
            nonlocal restarted
            done = []
            for number in range(RESTARTS):
                await asyncio.sleep(2)
                if number in KILLED:
                    await asyncio.to_thread(restarted.kill_hard)
                    done.append("SIGKILL")
                else:
                    await asyncio.to_thread(restarted.stop)  # uvicorn re-raises it: exit -15.
                    done.append("SIGTERM")
                restarted = await processes.start(env, f"three-{number + 1}")
            return done

        _, restarts = await asyncio.gather(flow(), chaos())
        assert restarts.count("SIGKILL") == len(KILLED), restarts

        connection = await asyncpg.connect(dsn)
        try:

            async def all_sent() -> bool:
                sent = "SELECT count(*) FROM followups WHERE status = 'sent'"
                return bool(await connection.fetchval(sent) == CONTACTS)

            await eventually(all_sent, timeout_s=180, what="every follow-up sent")
            rows = await connection.fetch("SELECT id::text AS id, stage_change_id FROM followups")
            abandoned = {
                r["id"]
                for r in await connection.fetch(
                    "SELECT DISTINCT followup_id::text AS id FROM followup_attempts"
                    " WHERE outcome = 'abandoned'"
                )
            }
        finally:
            await connection.close()
        # The replicas that were never restarted lived through every rebalance.
        for replica in steady:
            assert replica.process.poll() is None, replica.output()
        acknowledged = receiver.acknowledged()

    # Stored once: one follow-up per stage change, none missing.
    assert sorted(r["stage_change_id"] for r in rows) == sorted(c.id for c in changes)
    ids = {r["id"] for r in rows}
    # Delivered once per webhook-id: every follow-up, under its own id only. An id answered
    # twice is one whose replica was killed between the answer and its record: the attempt
    # is abandoned and re-sent under the same webhook-id (receivers deduplicate on it).
    assert set(acknowledged) == ids
    repeated = {webhook_id for webhook_id, count in acknowledged.items() if count > 1}
    assert repeated <= abandoned, repeated - abandoned
    assert max(acknowledged.values()) <= 2, acknowledged.most_common(3)
