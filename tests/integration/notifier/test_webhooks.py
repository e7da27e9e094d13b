"""Webhook follow-ups against a real HTTP receiver, broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable

import asyncpg
import pytest
from funnel_shared.events import FollowUpEvent
from funnel_shared.settings import KafkaSettings, TopicSettings
from standardwebhooks import Webhook, WebhookVerificationError

from tests.integration.notifier.conftest import StartHooked
from tests.support.kafka_reader import read_records
from tests.support.notifier_support import (
    Reply,
    eventually,
)

pytestmark = pytest.mark.integration

HOOK_RULES = """
funnel: hourglass
rules:
  - id: crm
    trigger: entered
    stage: closed
    action:
      type: webhook
      url_env: HOOK_URL
      secret_env: HOOK_SECRET
      headers: {X-Extra: yes-please}
"""


async def _status(db: asyncpg.Pool, contact: str) -> str | None:
    value = await db.fetchval("SELECT status FROM followups WHERE contact_id = $1", contact)
    return None if value is None else str(value)


async def _attempts(db: asyncpg.Pool, contact: str) -> list[asyncpg.Record]:
    return await db.fetch(
        """
        SELECT a.* FROM followup_attempts a JOIN followups f ON f.id = a.followup_id
        WHERE f.contact_id = $1 ORDER BY a.number
        """,
        contact,
    )


async def test_entering_a_stage_sends_one_signed_webhook_and_publishes_its_lifecycle(
    hooked_notifier: StartHooked,
    topics: TopicSettings,
    kafka_settings: KafkaSettings,
    db: asyncpg.Pool,
) -> None:
    async with hooked_notifier(HOOK_RULES) as hooked:
        contact, receiver, secret = hooked.contact, hooked.receiver, hooked.receiver.secret
        change = await hooked.enter(traits={"name": "Zoë"})
        await hooked.publish(change)  # A redelivery.
        await eventually(lambda: _status(db, contact), what="a follow-up row")
        await eventually(lambda: sum(receiver.acknowledged().values()) == 1, what="delivery")
        await eventually(lambda: _is(db, contact, "sent"), what="status sent")

    [request] = receiver.requests
    assert request.verified
    assert request.headers["x-extra"] == "yes-please"
    body = json.loads(request.body)
    followup_id = await db.fetchval("SELECT id::text FROM followups WHERE contact_id=$1", contact)
    assert request.headers["webhook-id"] == followup_id == body["data"]["followupId"]
    assert body["data"]["rule"] == {
        "id": "crm",
        "trigger": "entered",
        "funnel": "hourglass",
        "stage": "closed",
    }
    assert body["data"]["stageChange"]["id"] == change.id
    assert body["data"]["stageChange"]["traits"] == {"name": "Zoë"}
    # The independent verifier refuses the same signature over a tampered body.
    tampered = request.body.replace(b"closed", b"opened")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)

    records = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.followups, expected=2
    )
    events = [FollowUpEvent.model_validate_json(record.value) for record in records]
    assert [(e.status, e.followup_id, e.contact_id) for e in events] == [
        ("scheduled", followup_id, contact),
        ("sent", followup_id, contact),
    ]
    assert [r.headers["ce_id"] for r in records] == [e.id for e in events]
    assert {r.key for r in records} == {contact.encode()}


async def _is(db: asyncpg.Pool, contact: str, status: str) -> bool:
    return await _status(db, contact) == status


async def test_two_server_errors_then_success_is_three_attempts_under_one_webhook_id(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(HOOK_RULES, [Reply(500), Reply(500), Reply(200)]) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        await hooked.enter()
        await eventually(lambda: _is(db, contact, "sent"), what="sent after retries")
    assert len(receiver.requests) == 3
    assert len(set(receiver.ids())) == 1
    assert sum(receiver.acknowledged().values()) == 1
    attempts = await _attempts(db, contact)
    assert [(a["outcome"], a["status_code"]) for a in attempts] == [
        ("failed", 500),
        ("failed", 500),
        ("succeeded", 200),
    ]


async def test_gone_is_final_and_the_follow_up_is_dead_after_one_attempt(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(HOOK_RULES, [Reply(410)]) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        await hooked.enter()
        await eventually(lambda: _is(db, contact, "dead"), what="dead")
    assert len(receiver.requests) == 1
    error = await db.fetchval("SELECT last_error FROM followups WHERE contact_id = $1", contact)
    assert error.startswith("HTTP 410")


async def test_a_hanging_receiver_times_out_and_the_retry_is_delivered(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(HOOK_RULES, [Reply(hang=True)], attempt_timeout_s=1.0) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        await hooked.enter()
        await eventually(lambda: _is(db, contact, "sent"), what="sent after a timeout")
    attempts = await _attempts(db, contact)
    assert [a["outcome"] for a in attempts] == ["failed", "succeeded"]
    assert "no answer within 1s" in attempts[0]["error"]
    assert len(set(receiver.ids())) == 1


async def test_too_many_requests_with_retry_after_is_honoured(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(HOOK_RULES, [Reply(429, {"Retry-After": "2"})]) as hooked:
        contact = hooked.contact
        await hooked.enter()
        await eventually(lambda: _is(db, contact, "sent"), what="sent after Retry-After")
    first, second = await _attempts(db, contact)
    assert (first["status_code"], first["retry_after_s"]) == (429, 2.0)
    # The backoff alone (base 0.2 s, cap 1 s) would have retried sooner than this.
    assert (second["started_at"] - first["finished_at"]).total_seconds() >= 2.0


async def test_a_clean_stop_finishes_the_attempt_in_flight(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(HOOK_RULES, [Reply(delay_s=1.0)]) as hooked:
        contact, receiver = hooked.contact, hooked.receiver
        await hooked.enter()
        await eventually(lambda: len(receiver.requests) == 1, what="a request in flight")
        await hooked.runtime.stop()
    assert await _status(db, contact) == "sent"  # Nothing left for another process to resend.
    assert sum(receiver.acknowledged().values()) == 1


NOW_AND_LATER_RULES = """
funnel: hourglass
rules:
  - id: crm.now
    trigger: entered
    stage: closed
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
  - id: crm.later
    trigger: entered
    stage: cementing
    after: 2s
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
"""


async def test_with_an_hour_long_poll_due_retried_and_delayed_follow_ups_all_go_out(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    """The dispatcher wakes when follow-ups are stored and sleeps only until the next
    one is due: the poll interval is only the fallback."""

    async def statuses() -> list[tuple[str, str]]:
        rows = await db.fetch(
            "SELECT rule_id, status FROM followups WHERE contact_id = $1 ORDER BY rule_id",
            hooked.contact,
        )
        return [(row["rule_id"], row["status"]) for row in rows]

    async with hooked_notifier(NOW_AND_LATER_RULES, [Reply(503)], poll_interval_s=3600.0) as hooked:
        receiver = hooked.receiver
        await hooked.enter()
        await eventually(lambda: _has(statuses(), [("crm.now", "sent")]), what="sent after a retry")
        # The dispatcher now has nothing ahead of it: only the new row can wake it.
        await hooked.enter("cementing", from_stage="closed")
        await eventually(
            lambda: _has(statuses(), [("crm.later", "sent"), ("crm.now", "sent")]),
            what="the delayed follow-up sent",
        )
    attempts = await _attempts(db, hooked.contact)
    assert sorted(a["outcome"] for a in attempts) == ["failed", "succeeded", "succeeded"]
    assert set(receiver.acknowledged().values()) == {1}


async def _has(value: Awaitable[object], expected: object) -> bool:
    return await value == expected
