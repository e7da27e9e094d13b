"""Hostile trait values against the real notifier, SMTP sink and HTTP receiver (issue 15):
a recipient list or a CR/LF in a header fails that follow-up for good, on the first
attempt, and later contacts get their mail; webhook URLs go only to the rule's hosts."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from funnel_devstack.mailsink import MailSink
from funnel_devstack.processes import free_port
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import TopicSettings

from tests.integration.conftest import StartNotifier
from tests.integration.notifier.conftest import StartHooked
from tests.support.notifier_support import EMAIL_RULES, eventually, publish_change, stage_change

pytestmark = pytest.mark.integration


async def _followup(db: asyncpg.Pool, contact: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT status, total_attempts, last_error FROM followups WHERE contact_id = $1", contact
    )


@pytest.mark.parametrize(
    ("traits", "error"),
    [
        ({"email": "a@x.example, b@y.example, c@z.example"}, "invalid recipient"),
        ({"email": "Eve <eve@x.example>"}, "invalid recipient"),
        ({"email": "eve@x.example\r\nBcc: all@x.example"}, "invalid recipient"),
        ({"email": "not an address"}, "invalid recipient"),
        ({"email": "ok@x.example", "name": "Zoë\r\nBcc: all@x.example"}, "header"),
    ],
    ids=["list", "display-name", "crlf-recipient", "garbage", "crlf-subject"],
)
async def test_a_bad_recipient_or_header_is_dead_at_once_and_later_contacts_get_mail(
    start_notifier: StartNotifier,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
    tmp_path: Path,
    traits: dict[str, str],
    error: str,
) -> None:
    bad, later = f"c-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    with MailSink(directory=tmp_path / "mail", port=free_port()) as sink:
        await start_notifier(EMAIL_RULES, smtp_host=sink.host, smtp_port=sink.port)
        await publish_change(publisher, topics.stage_changed, stage_change(bad, traits=traits))
        await publish_change(
            publisher, topics.stage_changed, stage_change(later, traits={"email": "z@x.example"})
        )

        async def settled() -> bool:
            first, second = await _followup(db, bad), await _followup(db, later)
            return (
                first is not None
                and first["status"] == "dead"
                and second is not None
                and second["status"] == "sent"
            )

        await eventually(settled, what="the bad follow-up dead, the later one sent")
        mails = sink.messages()
    row = await _followup(db, bad)
    assert row is not None
    assert row["total_attempts"] == 1  # No retries: nothing a retry could fix.
    assert error in row["last_error"]
    assert [mail["To"] for mail in mails] == ["z@x.example"]


WEBHOOK_RULES = """
funnel: hourglass
rules:
  - id: allowed
    trigger: entered
    stage: closed
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, hosts: ["127.0.0.1"]}
  - id: elsewhere
    trigger: entered
    stage: closed
    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, hosts: [crm.example]}
"""


async def test_a_webhook_url_outside_the_rules_hosts_disables_that_rule_only(
    hooked_notifier: StartHooked, db: asyncpg.Pool
) -> None:
    async with hooked_notifier(WEBHOOK_RULES) as hooked:
        assert set(hooked.runtime.active.disabled) == {"elsewhere"}
        assert "not one of hosts" in hooked.runtime.active.disabled["elsewhere"]
        await hooked.enter("closed")
        await eventually(lambda: len(hooked.receiver.requests) == 1, what="one delivery")
    rules = await db.fetch("SELECT rule_id FROM followups WHERE contact_id = $1", hooked.contact)
    assert [row["rule_id"] for row in rules] == ["allowed"]
