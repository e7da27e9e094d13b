"""A funnel's report aggregates are built when the projection starts (after an upgrade,
or when a funnel's stage list changed), not by the first report request."""

from __future__ import annotations

import uuid

import pytest
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.projection_helpers import fetch_rows, running_projection, wait_until

pytestmark = pytest.mark.integration

STAGES = ["visitor", "lead", "customer"]


async def _registered(database_url: str) -> dict[str, list[str]]:
    rows = await fetch_rows(database_url, "SELECT funnel, stages FROM report_funnels")
    return {row["funnel"]: list(row["stages"]) for row in rows}


async def test_the_projection_registers_and_builds_each_funnel_report_when_it_starts(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> None:
    # A registration left by an older funnel file: its stage list changed since.
    connection_rows = await fetch_rows(
        projection_database,
        "INSERT INTO report_funnels (funnel, stages) VALUES ('older', $1::text[]) RETURNING funnel",
        ["visitor", "customer"],
    )
    assert connection_rows == [{"funnel": "older"}]
    assert await _registered(projection_database) == {"older": ["visitor", "customer"]}

    async with running_projection(
        kafka_settings,
        database_url=projection_database,
        topic=topics.stage_changed,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        report_funnels=[("fresh", STAGES), ("older", STAGES)],
    ) as projection:

        async def prepared() -> bool:
            return projection.consumer is not None and (
                await _registered(projection_database) == {"fresh": STAGES, "older": STAGES}
            )

        await wait_until(prepared, "both reports registered with the current stages")
