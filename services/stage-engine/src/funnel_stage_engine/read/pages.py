"""Server-rendered HTML: an index of funnels and one page per funnel with its SVG chart.

No JavaScript: the time range is a GET form with two date inputs. The contact and
stage pages are in ``contact_pages.py``; both use the templates defined here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BeforeValidator

from funnel_stage_engine.read.api import FunnelDep, Pool, funnel_report
from funnel_stage_engine.read.chart import funnel_chart
from funnel_stage_engine.read.report import duration, percent

__all__ = ["contact_href", "day_range", "pages_router", "templates"]

pages_router = APIRouter(include_in_schema=False)

templates = Environment(
    loader=PackageLoader("funnel_stage_engine.read", "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["percent"] = percent
templates.filters["duration"] = duration


def contact_href(contact_id: str) -> str:
    """A link to a contact's page. The id goes in the query string: any id is safe there,
    while a path would let ``..`` or ``/`` in an id change which page it names."""
    return "/contacts?" + urlencode({"id": contact_id})


templates.filters["contact_href"] = contact_href


def _blank_is_none(value: Any) -> Any:
    # A date input left empty is submitted as "since=": that means "no bound".
    return None if value == "" else value


Day = Annotated[date | None, BeforeValidator(_blank_is_none), Query()]


def day_range(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Form dates as a time range: from the start of ``since`` to the end of ``until`` (UTC)."""
    start = None if since is None else datetime.combine(since, time(), UTC)
    # The last day there is (9999-12-31) has no day after it: no upper bound.
    end = (
        None
        if until is None or until == date.max
        else datetime.combine(until + timedelta(days=1), time(), UTC)
    )
    return start, end


@pages_router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    funnels = request.app.state.web.funnels.values()
    return HTMLResponse(templates.get_template("index.html").render(funnels=funnels))


@pages_router.get("/funnels/{name}", response_class=HTMLResponse)
async def funnel_page(
    funnel: FunnelDep, pool: Pool, since: Day = None, until: Day = None
) -> HTMLResponse:
    if since is not None and until is not None and until < since:
        raise HTTPException(422, "until is before since")
    start, end = day_range(since, until)
    report = await funnel_report(pool, funnel, since=start, until=end)
    page = templates.get_template("funnel.html").render(
        funnel=funnel,
        report=report,
        chart=funnel_chart(report),
        since=since.isoformat() if since else "",
        until=until.isoformat() if until else "",
    )
    return HTMLResponse(page)
