"""Running totals in the contact read API and page (issue 18, item 1), through a real worker,
a real broker and PostgreSQL: a summed rule's total shows before, and without, any move."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from funnel_shared.events import TotalChanged, total_changed_id
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.processes import http_get
from tests.support.projection_helpers import fetch_rows, running_projection, wait_until
from tests.support.stage_outputs import publish_outputs

pytestmark = pytest.mark.integration

VALUE = """
name: value
stages: [lifetime]
rules:
  - id: lifetime
    to: lifetime
    match: {event: [Order Completed, Order Refunded]}
    sum: {property: revenue, at_least: 1000, within: 365d}
"""


def _order(contact: str, amount: float, at: datetime, event: str = "Order Completed") -> Any:
    return contact_event(contact, "track", event, at=at, properties={"revenue": amount})


async def _contact(url: str, contact: str) -> tuple[int, dict[str, Any]]:
    status, body = await asyncio.to_thread(http_get, f"{url}/v1/contacts/{contact}")
    return status, (json.loads(body) if status == 200 else {})


async def _until_total(url: str, contact: str, total: float) -> dict[str, Any]:
    """The contact's view once its one running total is ``total``."""
    seen: dict[str, Any] = {}

    async def shown() -> bool:
        nonlocal seen
        status, seen = await _contact(url, contact)
        return status == 200 and [t["total"] for t in seen["totals"]] == [total]

    await wait_until(shown, f"the read API to show {contact}'s total of {total}")
    return seen


async def test_a_running_total_shows_in_the_read_api_and_page_before_any_stage_change(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    funnels = tmp_path / "funnels"
    funnels.mkdir()
    (funnels / "value.yaml").write_text(VALUE)
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(funnels))
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    contact = f"{uuid.uuid4().hex[:8]}-buyer"
    topic = topic_env["TOPIC_CONTACT_EVENTS"]

    first = _order(contact, 400, START)
    await produce(kafka_settings, topic, [first])
    view = await _until_total(worker.url, contact, 400.0)
    # Shown though the contact stands nowhere yet.
    assert view["funnels"] == [], worker.log_tail()
    [total] = view["totals"]
    assert {k: total[k] for k in ("funnel", "ruleId", "toStage", "property")} == {
        "funnel": "value",
        "ruleId": "lifetime",
        "toStage": "lifetime",
        "property": "revenue",
    }
    assert (total["atLeast"], total["withinSeconds"], total["amounts"]) == (1000.0, 31536000.0, 1)
    assert (total["causeKind"], total["causeMessageId"]) == ("event", first.message_id)

    # More orders and a refund: the total follows each, still without a move.
    later = [
        _order(contact, 250, START + timedelta(days=1)),
        _order(contact, -100, START + timedelta(days=2), event="Order Refunded"),
        _order(contact, "n/a", START + timedelta(days=3)),  # type: ignore[arg-type]
    ]
    await produce(kafka_settings, topic, later)
    view = await _until_total(worker.url, contact, 550.0)
    await wait_until(lambda: _ignored_is(worker.url, contact, 1), "the ignored value to be counted")
    assert view["funnels"] == []

    status, page = await asyncio.to_thread(http_get, f"{worker.url}/contacts/{contact}")
    assert status == 200
    assert 'id="totals"' in page and "550.00" in page and "1000.00" in page

    # The order that crosses the threshold: the move, and the total it explains.
    await produce(kafka_settings, topic, [_order(contact, 600, START + timedelta(days=4))])
    view = await _until_total(worker.url, contact, 1150.0)

    async def moved() -> bool:
        status, seen = await _contact(worker.url, contact)
        return status == 200 and [f["currentStage"] for f in seen["funnels"]] == ["lifetime"]

    await wait_until(moved, "the contact to reach lifetime")
    _, view = await _contact(worker.url, contact)
    [history] = view["funnels"][0]["history"]
    assert history["explanation"]["sum"]["total"] == view["totals"][0]["total"] == 1150.0


async def _ignored_is(url: str, contact: str, ignored: int) -> bool:
    status, view = await _contact(url, contact)
    return status == 200 and [t["ignored"] for t in view["totals"]] == [ignored]


def _total(contact: str, total: float, sequence: int) -> TotalChanged:
    cause = f"m-{sequence}"
    at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(hours=sequence)
    return TotalChanged(
        id=total_changed_id(
            funnel="value",
            contact_id=contact,
            rule_id="lifetime",
            cause_id=cause,
            sequence=sequence,
        ),
        funnel="value",
        funnel_version="v1",
        contact_id=contact,
        rule_id="lifetime",
        to_stage="lifetime",
        property="revenue",
        total=total,
        at_least=1000.0,
        within_seconds=None,
        amounts=sequence,
        ignored=0,
        sequence=sequence,
        cause_message_id=cause,
        cause_kind="event",
        event_time=at,
        processed_at=at,
    )


async def test_the_projection_keeps_the_newest_total_when_an_older_one_arrives_late(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> None:
    contact = f"{uuid.uuid4().hex[:8]}-late"
    # The newest second, then two older ones: a replay after a crash, a late copy.
    outputs = [
        _total(contact, 300.0, 1),
        _total(contact, 700.0, 3),
        _total(contact, 300.0, 1),
        _total(contact, 500.0, 2),
    ]
    async with running_projection(
        kafka_settings,
        database_url=projection_database,
        topic=topics.stage_changed,
        group_id=f"test-projection-{uuid.uuid4().hex[:12]}",
    ) as projection:
        await publish_outputs(kafka_settings, topics.stage_changed, outputs)

        async def all_stored() -> bool:
            # The test's own topic: committed offsets add up to the records stored.
            return sum(projection.committed.values()) == len(outputs)

        await wait_until(all_stored, "every total to be projected and committed")
    rows = await fetch_rows(
        projection_database,
        "SELECT total, sequence, last_id FROM contact_totals WHERE contact_id = $1",
        contact,
    )
    assert rows == [{"total": 700.0, "sequence": 3, "last_id": outputs[1].id}]
