"""The report counts whole UTC days: a range that does not start and end at a UTC
midnight is a 422 that says so; a midnight in any zone's notation is accepted."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.web import create_web_app

from tests.support.access import AUTH_HEADERS, test_access
from tests.support.journey_set import funnels_under_test

pytestmark = pytest.mark.integration

REPORT = "/v1/funnels/journey/report"


@pytest.fixture
async def client(projection_database: str) -> AsyncIterator[httpx.AsyncClient]:
    pool = await asyncpg.create_pool(projection_database, min_size=1, max_size=2)
    projection = types.SimpleNamespace(pool=pool, last_error=None, store=None, assigned=set())
    app = create_web_app(
        funnels=funnels_under_test(),
        projection=projection,  # type: ignore[arg-type]
        metrics=StageEngineMetrics(),
        worker_status=lambda: "",
        access=test_access(),
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as http:
            yield http
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-23T08:00:00Z"},
        {"until": "2026-11-24T00:00:01Z"},
        {"since": "2026-11-23T00:00:00+01:00"},  # 23:00 the day before, in UTC.
        {"until": "2026-11-23T00:00:00.000001Z"},
    ],
)
async def test_a_range_that_is_not_whole_utc_days_is_refused(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(REPORT, params=params)
    assert response.status_code == 422, response.text
    assert "not a whole day" in response.json()["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-23", "until": "2026-11-24"},
        {"since": "2026-11-23T00:00:00Z"},
        {"since": "2026-11-23T05:00:00+05:00"},  # Midnight in UTC.
        {"until": "2026-11-23T00:00:00"},  # No zone: UTC.
    ],
)
async def test_whole_utc_days_are_answered(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(REPORT, params=params)
    assert response.status_code == 200, response.text
    assert [stage["reached"] for stage in response.json()["stages"]] == [0, 0, 0, 0]
