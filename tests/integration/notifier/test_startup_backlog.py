"""At start-up the dispatcher waits until the stage changes already on Kafka are stored, so a
later change in the backlog still cancels a follow-up (``unless: moved_on``) that is due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from funnel_devstack.mailsink import MailSink
from funnel_devstack.processes import free_port
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import TopicSettings

from tests.integration.conftest import StartNotifier
from tests.support.notifier_support import eventually, publish_change, stage_change

pytestmark = pytest.mark.integration

RULES = """
funnel: lifecycle
rules:
  - id: nudge
    trigger: entered
    stage: lead
    after: 1m
    unless: moved_on
    action:
      type: email
      template: nudge
      to: "{{ traits.email }}"
      from: "Funnel <hello@funnel.example>"
"""

# Records of the same contact (same key, same partition) between its two lifecycle changes:
# more than one fetch (the consumer takes at most 500 records at a time), so the change
# that cancels the nudge is stored in a later transaction than the one that schedules it.
FILLER = 1200


async def test_a_moved_on_contact_in_the_backlog_is_not_nudged_at_start_up(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    contact = f"c-{uuid.uuid4().hex}"
    traits = {"email": "ann@example.com"}
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    # The backlog, all on Kafka before the notifier starts: the contact became a lead an
    # hour ago (so the nudge is due at once), then a customer.
    topic = topics.stage_changed
    lead = stage_change(contact, to_stage="lead", traits=traits, event_time=an_hour_ago)
    await publish_change(publisher, topic, lead)
    for _ in range(FILLER):
        await publish_change(publisher, topic, stage_change(contact, funnel="other"))
    customer = stage_change(contact, from_stage="lead", to_stage="customer", traits=traits)
    await publish_change(publisher, topic, customer)

    with MailSink(directory=tmp_path / "mail", port=free_port()) as sink:
        await start_notifier(RULES, smtp_host=sink.host, smtp_port=sink.port)

        async def settled() -> bool:
            rows = await db.fetch("SELECT status FROM followups WHERE contact_id=$1", contact)
            return [row["status"] for row in rows] in (["cancelled"], ["sent"])

        await eventually(settled, timeout_s=120, what="the nudge settled")
        status = await db.fetchval("SELECT status FROM followups WHERE contact_id=$1", contact)
        assert status == "cancelled"
        assert sink.messages() == []
