"""The read API over a real projection: report numbers against a hand-computed journey set."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from funnel_shared.events import StageBlocked, StageChanged
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.access import AUTH_HEADERS
from tests.support.contact_events import START
from tests.support.journey_set import STAGES, STEPS, funnels_under_test, journey_set
from tests.support.projection_helpers import projected, read_web_app

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class ReadApi:
    client: httpx.AsyncClient
    run: str
    outputs: list[StageChanged | StageBlocked]


# One projection for the module: its tests only read what it stored.
@pytest.fixture(scope="module")
async def read_api(
    kafka_settings: KafkaSettings, module_topics: TopicSettings, module_projection_database: str
) -> AsyncIterator[ReadApi]:
    run = uuid.uuid4().hex[:8]
    outputs = journey_set(run)
    async with projected(
        kafka_settings,
        outputs,
        database_url=module_projection_database,
        topic=module_topics.stage_changed,
    ) as projection:
        app = read_web_app(projection)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as client:
            yield ReadApi(client=client, run=run, outputs=outputs)


def _column(report: dict[str, object], field: str) -> list[object]:
    return [stage[field] for stage in report["stages"]]  # type: ignore[attr-defined]


async def test_the_report_counts_and_converts_the_hand_computed_journey_set(
    read_api: ReadApi,
) -> None:
    since = START.date().isoformat()  # The report counts whole UTC days.
    until = (START + timedelta(days=2)).date().isoformat()
    response = await read_api.client.get(
        "/v1/funnels/journey/report", params={"since": since, "until": until}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert _column(report, "stage") == STAGES
    assert _column(report, "reached") == [10, 6, 3, 1]
    rates = _column(report, "conversionToNext")
    assert rates[:3] == [pytest.approx(0.6), pytest.approx(0.5), pytest.approx(1 / 3)]
    assert rates[3] is None
    assert _column(report, "medianSecondsToNext") == [12600, 7200, 36000, None]
    assert _column(report, "p90SecondsToNext") == [
        pytest.approx(19800),
        pytest.approx(12960),
        pytest.approx(36000),
        None,
    ]
    # Where contacts stand now, whatever the range: the early lead counts here too.
    assert _column(report, "current") == [4, 4, 2, 1]
    assert _column(report, "inProgress") == [4, 4, 2, 1]
    assert _column(report, "stalled") == [0, 0, 0, 0]

    everything = (await read_api.client.get("/v1/funnels/journey/report")).json()
    assert _column(everything, "reached") == [11, 7, 3, 1]


async def test_a_skipped_stage_counts_as_reached_on_the_way_past(read_api: ReadApi) -> None:
    report = (await read_api.client.get("/v1/funnels/skip/report")).json()
    assert _column(report, "reached") == [1, 1, 1, 1]
    assert _column(report, "medianSecondsToNext") == [3600, 0, 0, None]


async def test_strict_funnel_reports_blocked_skips_at_the_stage_they_were_held_in(
    read_api: ReadApi,
) -> None:
    params = {"since": START.date().isoformat()}
    report = (await read_api.client.get("/v1/funnels/steps/report", params=params)).json()
    assert _column(report, "blocked") == [1, 0, 0]
    everything = (await read_api.client.get("/v1/funnels/steps/report")).json()
    assert _column(everything, "blocked") == [2, 0, 0]


async def test_a_contact_shows_each_stage_change_with_its_rule_cause_and_time(
    read_api: ReadApi,
) -> None:
    contact = f"{read_api.run}-c0"
    response = await read_api.client.get(f"/v1/contacts/{contact}")
    assert response.status_code == 200, response.text
    body = response.json()
    [funnel] = body["funnels"]
    assert (funnel["funnel"], funnel["currentStage"], funnel["furthestStage"]) == (
        "journey",
        "customer",
        "customer",
    )
    assert funnel["traits"] == {"email": f"{contact}@example.com"}
    expected = [o for o in read_api.outputs if o.contact_id == contact]
    assert [
        (e["fromStage"], e["toStage"], e["ruleId"], e["causeMessageId"], e["eventTime"])
        for e in funnel["history"]
    ] == [
        (
            o.from_stage,
            o.to_stage,
            o.rule_id,
            o.cause_message_id,
            o.event_time.isoformat().replace("+00:00", "Z"),
        )
        for o in expected
        if isinstance(o, StageChanged)
    ]


async def test_unknown_contacts_and_funnels_get_404_with_a_json_error(read_api: ReadApi) -> None:
    for path in ("/v1/contacts/nobody-at-all", "/v1/funnels/nope", "/v1/funnels/nope/report"):
        response = await read_api.client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json(), path


async def test_malformed_dates_get_422(read_api: ReadApi) -> None:
    for params in ({"since": "yesterday"}, {"until": "2026-13-45"}):
        response = await read_api.client.get("/v1/funnels/journey/report", params=params)
        assert response.status_code == 422, params
    page = await read_api.client.get("/funnels/journey", params={"since": "soon"})
    assert page.status_code == 422
    # A date input left empty means "no bound", as the page's own form submits it.
    blank = await read_api.client.get("/funnels/journey", params={"since": "", "until": ""})
    assert blank.status_code == 200


async def test_funnels_are_listed_with_their_definitions_and_versions(read_api: ReadApi) -> None:
    versions = {funnel.name: funnel.version for funnel in funnels_under_test()}
    listed = (await read_api.client.get("/v1/funnels")).json()
    assert {(f["name"], f["version"], f["ordering"]) for f in listed} == {
        ("journey", versions["journey"], "forward"),
        ("skip", versions["skip"], "forward"),
        ("steps", versions["steps"], "strict"),
    }
    steps = (await read_api.client.get("/v1/funnels/steps")).json()
    assert steps["stages"] == STEPS
    assert [rule["id"] for rule in steps["rules"]] == ["sign-up"]
