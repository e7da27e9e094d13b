"""The report's "dropped" count: stalled in a stage and never progressed, per stage.

A hand-computed set (funnel ``journey``: visitor, lead, prospect, customer; stall
deadlines two days after entering):

- ``lead-only``: visitor, lead, stalls in lead, nothing more: dropped at lead.
- ``came-back``: visitor, lead, stalls in lead, later prospect: not dropped (progressed).
- ``moved-back``: visitor, lead, prospect, stalls in prospect and is moved back to lead
  by the stall: dropped at prospect (its furthest is still prospect), not at lead.
- ``old-visitor``: a visitor who stalled ten days before the range: dropped at visitor
  without a range, not within the range.
- ``anon`` stalls as a visitor, then merges into ``known`` who becomes a lead: one
  person who progressed, so not dropped.
- ``busy``: visitor, lead, no stall: not dropped.

Without a range: visitor 1, lead 1, prospect 1, customer 0. From START on: visitor 0.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from funnel_shared.events import AnyStageOutput
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.access import AUTH_HEADERS
from tests.support.contact_events import START
from tests.support.journey_set import HOUR, STAGES
from tests.support.projection_helpers import projected, read_web_app
from tests.support.stage_outputs import journey, merged, stalled

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
STALL = 2 * DAY


def _dropped_set(run: str) -> list[AnyStageOutput]:
    out: list[AnyStageOutput] = []
    lead_only = journey(
        f"{run}-lead-only", "journey", [("visitor", START), ("lead", START + HOUR)], stages=STAGES
    )
    out += [*lead_only, stalled(lead_only[-1], after=STALL)]
    came_back = journey(
        f"{run}-came-back",
        "journey",
        [("visitor", START), ("lead", START + HOUR), ("prospect", START + 5 * DAY)],
        stages=STAGES,
    )
    out += [*came_back[:2], stalled(came_back[1], after=STALL), came_back[2]]
    moved_back = journey(
        f"{run}-moved-back",
        "journey",
        [
            ("visitor", START),
            ("lead", START + HOUR),
            ("prospect", START + 2 * HOUR),
            ("lead", START + 2 * HOUR + STALL),
        ],
        stages=STAGES,
    )
    stall = stalled(moved_back[2], after=STALL, move_to="lead")
    back = moved_back[3].model_copy(
        update={"cause_kind": "stall", "cause_message_id": stall.id, "rule_id": "stall"}
    )
    out += [*moved_back[:3], stall, back]
    old = journey(f"{run}-old-visitor", "journey", [("visitor", START - 10 * DAY)], stages=STAGES)
    out += [*old, stalled(old[0], after=STALL)]
    anonymous = journey(f"{run}-anon", "journey", [("visitor", START)], stages=STAGES)
    out += [*anonymous, stalled(anonymous[0], after=STALL)]
    merge = merged(
        f"{run}-known",
        f"{run}-anon",
        "journey",
        stage="visitor",
        anonymous_stage="visitor",
        at=START + 3 * DAY,
    )
    [enter, lead] = journey(
        f"{run}-known",
        "journey",
        [("visitor", START + 3 * DAY), ("lead", START + 4 * DAY)],
        stages=STAGES,
    )
    enter = enter.model_copy(
        update={"cause_kind": "merge", "cause_message_id": merge.merge_id, "rule_id": "merge"}
    )
    out += [merge, enter, lead]
    out += journey(
        f"{run}-busy", "journey", [("visitor", START), ("lead", START + HOUR)], stages=STAGES
    )
    return out


@pytest.fixture(scope="module")
async def http(
    kafka_settings: KafkaSettings, module_topics: TopicSettings, module_projection_database: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with projected(
        kafka_settings,
        _dropped_set(uuid.uuid4().hex[:8]),
        database_url=module_projection_database,
        topic=module_topics.stage_changed,
    ) as projection:
        transport = httpx.ASGITransport(app=read_web_app(projection))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as client:
            yield client


async def _dropped(http: httpx.AsyncClient, query: str = "") -> list[int]:
    response = await http.get(f"/v1/funnels/journey/report{query}")
    assert response.status_code == 200, response.text
    by_stage = {stage["stage"]: stage for stage in response.json()["stages"]}
    return [by_stage[stage]["dropped"] for stage in STAGES]


async def test_dropped_counts_people_who_stalled_and_never_progressed(
    http: httpx.AsyncClient,
) -> None:
    assert await _dropped(http) == [1, 1, 1, 0]


async def test_dropped_counts_stalls_in_the_range(http: httpx.AsyncClient) -> None:
    since = START.date().isoformat()  # The report counts whole UTC days.
    assert await _dropped(http, f"?since={since}") == [0, 1, 1, 0]
    until = (START - DAY).date().isoformat()
    assert await _dropped(http, f"?until={until}") == [1, 0, 0, 0]


async def test_the_funnel_page_shows_dropped(http: httpx.AsyncClient) -> None:
    page = await http.get("/funnels/journey")
    assert page.status_code == 200
    assert "<th>Dropped</th>" in page.text
