"""The contact and stage pages (issue 18, item 4) over a real projection, in a real browser
and over HTTP: the timeline, the follow-ups from the notifier's table, the paginated list
of who is in a stage now, the search box, the token, and hostile ids."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode

import asyncpg
import httpx
import pytest
import uvicorn
from funnel_devstack.processes import free_port
from funnel_notifier.main import migrate as migrate_notifier
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from funnel_stage_engine.read.followups import contact_followups
from playwright.async_api import Page
from pydantic import SecretStr

from tests.support.access import AUTH_HEADERS, TOKEN
from tests.support.browser import signed_in_page
from tests.support.contact_events import START
from tests.support.contact_pages import PAGED, ContactPageSet, contact_page_set
from tests.support.projection_helpers import projected, read_web_app, wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    url: str
    data: ContactPageSet


async def _add_followups(database_url: str, contact: str) -> None:
    """Rows as the notifier's intake and dispatcher leave them: one sent, one scheduled."""
    connection = await asyncpg.connect(database_url)
    try:
        for rule, status, due, sent in [
            ("welcome-mail", "sent", START + timedelta(hours=1), START + timedelta(hours=1)),
            ("nudge-lead", "scheduled", START + timedelta(days=5), None),
        ]:
            await connection.execute(
                """
                INSERT INTO followups (id, stage_change_id, rule_id, trigger, channel, funnel,
                    contact_id, stage, unless_moved_on, record, status, due_at, sent_at, attempts)
                VALUES ($1, $2, $3, 'entered', 'mail', 'journey', $4, 'lead', true, $5::jsonb,
                        $6, $7, $8, $9)
                """,
                uuid.uuid4(),
                str(uuid.uuid4()),
                rule,
                contact,
                json.dumps({}),
                status,
                due,
                sent,
                1 if sent else 0,
            )
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def served(
    kafka_settings: KafkaSettings, module_topics: TopicSettings, module_projection_database: str
) -> AsyncIterator[Served]:
    """Both services' tables in one database (as in the dev stack), the page set projected,
    two follow-ups for the contact, and the pages served by uvicorn on a free port."""
    database = module_projection_database
    await asyncio.to_thread(migrate_notifier, DatabaseSettings(database_url=SecretStr(database)))
    data = contact_page_set(uuid.uuid4().hex[:8])
    await _add_followups(database, data.me)
    async with projected(
        kafka_settings, data.outputs, database_url=database, topic=module_topics.stage_changed
    ) as projection:
        port = free_port()
        config = uvicorn.Config(
            read_web_app(projection), host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())

        async def started() -> bool:
            return bool(server.started) or serving.done()

        await wait_until(started, "uvicorn to start", timeout_s=30)
        try:
            yield Served(f"http://127.0.0.1:{port}", data)
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 30)


def _contact_url(base: str, contact: str) -> str:
    return f"{base}/contacts?{urlencode({'id': contact})}"


async def _cells(page: Page, selector: str) -> list[list[str]]:
    rows = page.locator(selector)
    return [
        [cell.strip() for cell in await rows.nth(i).locator("td").all_inner_texts()]
        for i in range(await rows.count())
    ]


async def test_the_contact_page_stage_lists_and_search_in_the_browser(served: Served) -> None:
    data = served.data
    async with signed_in_page(TOKEN) as (page, problems):
        # The search box, on every page, opens the contact's page.
        await page.goto(served.url + "/funnels/journey", wait_until="load")
        await page.fill("form.search input[name=id]", data.me)
        await page.click("form.search input[type=submit]")
        await page.wait_for_url(_contact_url(served.url, data.me))
        assert await page.locator("h1.contact-id").inner_text() == data.me

        timeline = await _cells(page, "#timeline tbody tr")
        # (funnel, what, rule, cause, why) in event-time order.
        assert [[row[2], row[3], row[4], row[5], row[7]] for row in timeline] == [
            ["journey", "entered at visitor", "rule-visitor", "page Pricing", ""],
            ["steps", "entered at signed_up", "rule-signed_up", "event", ""],
            [
                "journey",
                "visitor → lead",
                "rule-lead",
                "track Order Completed",
                "revenue totalled 1040.5 over all time (at least 1000)",
            ],
            [
                "steps",
                "refused skip to ordered (stays signed_up)",
                "rule-ordered",
                "track Order Completed",
                "",
            ],
            ["journey", "stalled in lead after 2 d", "", "stall", ""],
            [
                "journey",
                f"{data.anonymous} merged in (it was at visitor); now at lead · {data.anonymous}",
                "",
                "merge",
                "",
            ],
        ]
        kinds = await page.locator("#timeline tbody tr").evaluate_all(
            "rows => rows.map(row => row.className)"
        )
        assert kinds == ["change", "change", "change", "blocked", "stall", "merge"]
        # Event time and processing time of the first row; its messageId is shown.
        assert timeline[0][0] == START.isoformat()
        assert timeline[0][1] == (START + timedelta(seconds=1)).isoformat()
        assert timeline[0][6]

        followups = await _cells(page, "#followups tr.followup")
        assert [[row[0], row[4]] for row in followups] == [
            ["nudge-lead", "scheduled"],
            ["welcome-mail", "sent"],
        ]

        # The merged anonymous contact's page says where it went, and links back.
        await page.click(f"#timeline a:text-is('{data.anonymous}')")
        await page.wait_for_url(_contact_url(served.url, data.anonymous))
        await page.locator(f"main a:text-is('{data.me}')").first.click()
        await page.wait_for_url(_contact_url(served.url, data.me))

        # From the funnel page to a stage's list, newest first, three pages of three.
        await page.goto(served.url + "/funnels/skip", wait_until="load")
        here_now = page.locator("table tbody tr", has_text="prospect").locator("a.here-now")
        assert await here_now.inner_text() == str(PAGED)
        await here_now.click()
        await page.wait_for_url(served.url + "/funnels/skip/stages/prospect")
        assert await page.locator("#here-now-total").inner_text() == str(PAGED)
        await page.goto(served.url + "/funnels/skip/stages/prospect?size=3")
        listed: list[list[str]] = []
        for _ in range(PAGED):  # Bounded: at most one page per contact.
            listed.append(await page.locator("#here-now td.id").all_inner_texts())
            if await page.locator("#next-page").count() == 0:
                break
            async with page.expect_navigation():
                await page.click("#next-page")
        assert listed == [
            data.paged_newest_first[0:3],
            data.paged_newest_first[3:6],
            data.paged_newest_first[6:],
        ]
        # Each links to its contact's page.
        await page.click(f"#here-now a:text-is('{data.paged_newest_first[-1]}')")
        await page.wait_for_url(_contact_url(served.url, data.paged_newest_first[-1]))
        assert await page.locator("h1.contact-id").inner_text() == data.paged_newest_first[-1]

        # A markup id is text, on its page and in the search box's round trip.
        await page.fill("form.search input[name=id]", data.hostile)
        await page.click("form.search input[type=submit]")
        await page.wait_for_url(_contact_url(served.url, data.hostile))
        assert await page.locator("h1.contact-id").inner_text() == data.hostile
        assert await page.locator("main script").count() == 0
    assert problems == []


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, headers=AUTH_HEADERS) as test_client:
        yield test_client


NEW_PAGES = [
    "/contacts",
    "/contacts?id=someone",
    "/contacts/someone",
    "/funnels/skip/stages/prospect",
]


@pytest.mark.parametrize("path", NEW_PAGES)
async def test_the_new_pages_need_the_token(served: Served, path: str) -> None:
    async with httpx.AsyncClient(base_url=served.url) as anonymous:
        response = await anonymous.get(path)
        wrong = await anonymous.get(path, auth=("me", "not-the-token"))
        right = await anonymous.get(path, auth=("me", TOKEN))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert wrong.status_code == 401
    assert right.status_code in (200, 404)  # someone is unknown: 404, but past the guard


async def test_an_unknown_contact_is_a_404_page(client: httpx.AsyncClient) -> None:
    for path in ("/contacts/nobody-at-all", "/contacts?id=nobody-at-all"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert 'No contact <code class="contact-id">nobody-at-all</code>' in response.text


async def test_a_markup_contact_id_is_escaped(served: Served, client: httpx.AsyncClient) -> None:
    hostile = served.data.hostile
    for response in (
        await client.get("/contacts", params={"id": hostile}),
        await client.get("/contacts/" + quote(hostile, safe="")),
        await client.get("/contacts", params={"id": "<script>nobody</script>"}),  # the 404 page
    ):
        assert "<script>" not in response.text
        assert "&lt;script&gt;" in response.text
    page = await client.get("/funnels/journey/stages/visitor")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;" in page.text


@pytest.mark.parametrize(
    "query",
    [
        {"id": "a" * 1025},
        {"id": "a\x00b"},
        {"id": "line\nbreak"},
    ],
)
async def test_an_id_too_long_or_with_control_characters_is_refused(
    client: httpx.AsyncClient, query: dict[str, str]
) -> None:
    assert (await client.get("/contacts", params=query)).status_code == 422


@pytest.mark.parametrize(
    "query",
    [
        {"size": "0"},
        {"size": "201"},
        {"after": "2026-11-23T09:00:00+00:00"},  # without after_id
        {"after_id": "x"},  # without after
        {"after": "0001-01-01T00:00:00+05:00", "after_id": "x"},
        {"after": "yesterday", "after_id": "x"},
        {"after": "2026-11-23T09:00:00+00:00", "after_id": "x" * 1025},
    ],
)
async def test_stage_page_bounds(client: httpx.AsyncClient, query: dict[str, str]) -> None:
    response = await client.get("/funnels/skip/stages/prospect", params=query)
    assert response.status_code == 422, response.text


async def test_an_unknown_stage_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/funnels/skip/stages/nowhere")).status_code == 404


async def test_the_stage_list_and_the_report_agree_on_who_is_here_now(
    client: httpx.AsyncClient,
) -> None:
    report = (await client.get("/v1/funnels/journey/report")).json()
    for stage in report["stages"]:
        page = await client.get(f"/funnels/journey/stages/{stage['stage']}", params={"size": 200})
        listed = page.text.count('<td class="id">')
        assert listed == stage["current"], stage
    # The merged anonymous contact is counted nowhere: it stands as the contact it joined.
    visitors = await client.get("/funnels/journey/stages/visitor", params={"size": 200})
    assert "-anon<" not in visitors.text


async def test_follow_ups_are_not_available_without_the_notifiers_table(
    projection_database: str,
) -> None:
    pool = await asyncpg.create_pool(projection_database, min_size=1, max_size=1)
    try:
        assert await contact_followups(pool, "anyone") is None
    finally:
        await pool.close()
