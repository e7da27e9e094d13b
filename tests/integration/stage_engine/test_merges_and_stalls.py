"""Merges and stalls in the projection, the contact view and the report."""

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


def _merge_and_stall(run: str) -> list[AnyStageOutput]:
    """An anonymous visitor identifies as user x, who then becomes a lead; user y stalls as a lead.

    The merge moves x into the funnel (a stage change caused by the merge).
    """
    anonymous, user_x, user_y = f"{run}-anon", f"{run}-x", f"{run}-y"
    outputs: list[AnyStageOutput] = []
    outputs += journey(anonymous, "journey", [("visitor", START)], stages=STAGES)
    merge = merged(
        user_x, anonymous, "journey", stage="visitor", anonymous_stage="visitor", at=START + HOUR
    )
    [enter, lead] = journey(
        user_x, "journey", [("visitor", START + HOUR), ("lead", START + 2 * HOUR)], stages=STAGES
    )
    enter = enter.model_copy(
        update={"cause_kind": "merge", "cause_message_id": merge.merge_id, "rule_id": "merge"}
    )
    outputs += [merge, enter, lead]
    y_moves = journey(
        user_y, "journey", [("visitor", START), ("lead", START + HOUR)], stages=STAGES
    )
    outputs += [*y_moves, stalled(y_moves[-1], after=timedelta(days=2))]
    return outputs


# One projection for the module: its tests only read what it stored.
@pytest.fixture(scope="module")
async def client(
    kafka_settings: KafkaSettings, module_topics: TopicSettings, module_projection_database: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    run = uuid.uuid4().hex[:8]
    async with projected(
        kafka_settings,
        _merge_and_stall(run),
        database_url=module_projection_database,
        topic=module_topics.stage_changed,
    ) as projection:
        app = read_web_app(projection)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as http:
            yield http, run


async def test_a_merged_contact_counts_once_and_a_stall_is_reported_apart(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = client
    report = (await http.get("/v1/funnels/journey/report")).json()
    by_stage = {stage["stage"]: stage for stage in report["stages"]}
    # Two people reached visitor and lead: the anonymous visitor is user x.
    assert [by_stage[s]["reached"] for s in STAGES] == [2, 2, 0, 0]
    # x: lead 2 h after the anonymous visit; y: 1 h.
    assert by_stage["visitor"]["medianSecondsToNext"] == 5400
    assert (by_stage["visitor"]["current"], by_stage["lead"]["current"]) == (0, 2)
    assert (by_stage["lead"]["inProgress"], by_stage["lead"]["stalled"]) == (1, 1)


async def test_the_contact_view_shows_merges_and_stalls(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, run = client
    anonymous = (await http.get(f"/v1/contacts/{run}-anon")).json()
    assert anonymous["mergedInto"] == f"{run}-x"
    [merge] = anonymous["merges"]
    assert (merge["contactId"], merge["mergedContactId"]) == (f"{run}-x", f"{run}-anon")

    user_x = (await http.get(f"/v1/contacts/{run}-x")).json()
    assert user_x["mergedInto"] is None
    [funnel] = user_x["funnels"]
    assert [(e["causeKind"], e["toStage"]) for e in funnel["history"]] == [
        ("merge", "visitor"),
        ("event", "lead"),
    ]
    assert funnel["history"][0]["causeMessageId"] == merge["mergeId"]

    user_y = (await http.get(f"/v1/contacts/{run}-y")).json()
    [funnel] = user_y["funnels"]
    [stall] = funnel["stalls"]
    assert (stall["stage"], stall["stalledAfterSeconds"]) == ("lead", 2 * 86400)
    assert funnel["stalledAt"] == stall["eventTime"]
