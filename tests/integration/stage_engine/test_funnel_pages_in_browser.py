"""The funnel pages in a real headless browser: no console errors, one bar per stage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from funnel_devstack.processes import free_port
from funnel_shared.settings import KafkaSettings, TopicSettings
from playwright.async_api import Page

from tests.support.access import TOKEN
from tests.support.browser import signed_in_page
from tests.support.journey_set import STAGES, journey_set
from tests.support.projection_helpers import projected, read_web_app, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def pages_url(
    kafka_settings: KafkaSettings, topics: TopicSettings, projection_database: str
) -> AsyncIterator[str]:
    """The web app over the projected journey set, served by uvicorn on a free port."""
    outputs = journey_set(uuid.uuid4().hex[:8])
    async with projected(
        kafka_settings, outputs, database_url=projection_database, topic=topics.stage_changed
    ) as projection:
        app = read_web_app(projection)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())

        async def started() -> bool:
            return bool(server.started) or serving.done()

        await wait_until(started, "uvicorn to start", timeout_s=30)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 30)


async def _bar_widths(page: Page) -> list[float]:
    bars = page.locator("#funnel-chart rect.bar")
    return [float(await bars.nth(i).get_attribute("width") or 0) for i in range(await bars.count())]


async def test_the_funnel_page_draws_one_bar_per_stage_with_no_console_errors(
    pages_url: str,
) -> None:
    async with signed_in_page(TOKEN) as (page, problems):
        response = await page.goto(pages_url + "/", wait_until="load")
        assert response is not None and response.status == 200
        assert await page.locator("ul.funnels li").count() == 3
        await page.click("text=journey")
        await page.wait_for_url(pages_url + "/funnels/journey")

        bars = page.locator("#funnel-chart rect.bar")
        assert await bars.count() == len(STAGES)
        widths = await _bar_widths(page)
        # All time: 11, 7, 3, 1 reached; widths follow the counts.
        assert widths == sorted(widths, reverse=True)
        assert widths[1] / widths[0] == pytest.approx(7 / 11, abs=0.01)
        rates = await page.locator("#funnel-chart text.step-rate").all_text_contents()
        assert rates == ["64% convert", "43% convert", "33% convert"]

        # The range form: a GET with date inputs, no script involved.
        await page.fill("input[name=since]", "2026-11-23")
        await page.fill("input[name=until]", "2026-11-24")
        await page.click("button[type=submit]")
        await page.wait_for_url("**/funnels/journey?since=2026-11-23&until=2026-11-24")
        assert await bars.count() == len(STAGES)
        rates = await page.locator("#funnel-chart text.step-rate").all_text_contents()
        assert rates == ["60% convert", "50% convert", "33% convert"]
    assert problems == []
