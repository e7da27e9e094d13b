"""The contact read API shows why a summed or counted rule fired: the total that crossed it."""

from __future__ import annotations

import uuid

import httpx
import pytest
from funnel_shared.events import CountExplanation, Explanation, SumExplanation
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.access import AUTH_HEADERS
from tests.support.contact_events import START
from tests.support.journey_set import HOUR, STAGES
from tests.support.projection_helpers import projected, read_web_app
from tests.support.stage_outputs import journey

pytestmark = pytest.mark.integration


async def test_the_history_carries_the_total_that_crossed_the_threshold(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> None:
    contact = f"{uuid.uuid4().hex[:8]}-buyer"
    visit, big = journey(
        contact, "journey", [("visitor", START), ("customer", START + HOUR)], stages=STAGES
    )
    explained = Explanation(
        count=CountExplanation(matches=3, at_least=3, within_seconds=604800.0),
        sum=SumExplanation(property="revenue", total=1040.5, at_least=1000.0, within_seconds=None),
    )
    big = big.model_copy(update={"rule_id": "big-spender", "explanation": explained})
    async with projected(
        kafka_settings,
        [visit, big],
        database_url=projection_database,
        topic=topics.stage_changed,
    ) as projection:
        transport = httpx.ASGITransport(app=read_web_app(projection))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as http:
            response = await http.get(f"/v1/contacts/{contact}")
    assert response.status_code == 200, response.text
    [funnel] = response.json()["funnels"]
    history = {entry["ruleId"]: entry for entry in funnel["history"]}
    assert history[visit.rule_id]["explanation"] is None
    assert history["big-spender"]["explanation"] == {
        "count": {"matches": 3, "atLeast": 3, "withinSeconds": 604800.0},
        "sum": {"property": "revenue", "total": 1040.5, "atLeast": 1000.0, "withinSeconds": None},
    }
