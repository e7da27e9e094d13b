"""Hostile query values against the read API and pages over a real projection (issue 15):
every parameter of every route, from a table and from hypothesis; never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from funnel_shared.settings import KafkaSettings, TopicSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.access import AUTH_HEADERS
from tests.support.journey_set import journey_set
from tests.support.projection_helpers import projected, read_web_app

pytestmark = pytest.mark.integration

REPORT = "/v1/funnels/journey/report"
PAGE = "/funnels/journey"


@pytest.fixture(scope="module")
async def client(
    kafka_settings: KafkaSettings, module_topics: TopicSettings, module_projection_database: str
) -> AsyncIterator[httpx.AsyncClient]:
    outputs = journey_set(uuid.uuid4().hex[:8])
    async with projected(
        kafka_settings,
        outputs,
        database_url=module_projection_database,
        topic=module_topics.stage_changed,
    ) as projection:
        transport = httpx.ASGITransport(app=read_web_app(projection), raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH_HEADERS
        ) as test_client:
            yield test_client


# (path, query, expected status). Each 422 must say why.
TABLE = [
    (REPORT, {"until": "9999-12-31"}, 200),
    (REPORT, {"since": "0001-01-01"}, 200),
    (REPORT, {"until": "9999-12-31T23:59:59-05:00"}, 422),
    (REPORT, {"since": "0001-01-01T00:00:00+05:00"}, 422),
    (REPORT, {"since": "2026-02-01", "until": "2026-01-01"}, 422),
    (REPORT, {"since": "2026-01-01", "until": "2026-01-01"}, 200),
    (REPORT, {"since": "yesterday"}, 422),
    (REPORT, {"until": "2026-13-45"}, 422),
    (REPORT, {"since": "1" * 400}, 422),
    (REPORT, {"since": "-1e308"}, 422),
    (REPORT, {"until": "\x00"}, 422),
    (REPORT, {"since": "2026-01-01T00:00:00+99:00"}, 422),
    (PAGE, {"until": "9999-12-31"}, 200),
    (PAGE, {"since": "0001-01-01", "until": "9999-12-31"}, 200),
    (PAGE, {"since": "9999-12-31", "until": "0001-01-01"}, 422),
    (PAGE, {"until": "10000-01-01"}, 422),
    (PAGE, {"since": "\x00"}, 422),
]


@pytest.mark.parametrize(("path", "query", "status"), TABLE)
async def test_query_values_from_the_table(
    client: httpx.AsyncClient, path: str, query: dict[str, str], status: int
) -> None:
    response = await client.get(path, params=query)
    assert response.status_code == status, (query, response.text)
    if status == 422:
        assert response.text.strip(), "a 422 says why"


@pytest.mark.parametrize(
    ("contact", "status"),
    [
        ("a%00b", 422),
        ("%0A", 422),
        ("a%7Fb", 422),
        ("x" * 5000, 422),
        (quote("zoë 🎉"), 404),
        ("x" * 1024, 404),
    ],
)
async def test_contact_ids_in_the_path(
    client: httpx.AsyncClient, contact: str, status: int
) -> None:
    response = await client.get(f"/v1/contacts/{contact}")
    assert response.status_code == status, response.text


@pytest.mark.parametrize("name", ["a%00b", "x" * 5000, quote("zoë"), "%0A"])
async def test_funnel_names_in_the_path(client: httpx.AsyncClient, name: str) -> None:
    for path in (f"/v1/funnels/{name}", f"/v1/funnels/{name}/report", f"/funnels/{name}"):
        assert (await client.get(path)).status_code == 404, path


dates = st.one_of(
    st.text(max_size=40),
    st.datetimes().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.builds(
        lambda d, h, m: f"{d.isoformat()}{'+' if h >= 0 else '-'}{abs(h):02d}:{m:02d}",
        st.datetimes(),
        st.integers(-30, 30),
        st.integers(0, 59),
    ),
    st.integers().map(str),
    st.floats().map(str),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(since=st.none() | dates, until=st.none() | dates, page=st.booleans())
async def test_any_since_and_until_get_200_or_422(
    client: httpx.AsyncClient, since: str | None, until: str | None, page: bool
) -> None:
    params = {
        name: value for name, value in (("since", since), ("until", until)) if value is not None
    }
    response = await client.get(PAGE if page else REPORT, params=params)
    assert response.status_code in (200, 422), (params, response.text)
