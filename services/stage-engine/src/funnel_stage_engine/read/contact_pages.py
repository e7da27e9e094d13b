"""The contact page (a timeline across funnels and its follow-ups) and the stage pages
(who is in a stage now, newest first, a page at a time). Server-rendered, no JavaScript.

Contact ids are hostile: every value is escaped by the templates (autoescape), an
id is bounded like the read API's (1,024 characters, no control characters), and
links carry it in the query string (``contact_href``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse

from funnel_stage_engine.read.api import (
    MAX_CONTACT_ID_CHARS,
    FunnelDep,
    Pool,
    checked_range,
)
from funnel_stage_engine.read.api_models import contact_view
from funnel_stage_engine.read.followups import MAX_FOLLOWUPS, contact_followups
from funnel_stage_engine.read.pages import templates
from funnel_stage_engine.read.reads import contact_rows, contacts_here_now
from funnel_stage_engine.read.timeline import timeline

__all__ = ["MAX_PAGE_SIZE", "PAGE_SIZE", "contact_pages_router"]

# Contacts per stage page: the default, and the most a ``size`` may ask for.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

contact_pages_router = APIRouter(include_in_schema=False)

# As the read API: no control characters (PostgreSQL refuses U+0000 in text).
_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_SearchId = Annotated[
    str | None, Query(alias="id", max_length=MAX_CONTACT_ID_CHARS, pattern=_ID_PATTERN)
]
_PathId = Annotated[str, Path(max_length=MAX_CONTACT_ID_CHARS, pattern=_ID_PATTERN)]
_AfterId = Annotated[str | None, Query(max_length=MAX_CONTACT_ID_CHARS, pattern=_ID_PATTERN)]
_Size = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


@contact_pages_router.get("/contacts", response_class=HTMLResponse)
async def search_contact(
    request: Request, pool: Pool, contact_id: _SearchId = None
) -> HTMLResponse:
    """The search box's target: the contact's page, or the empty search page."""
    if not contact_id:
        return HTMLResponse(templates.get_template("contact.html").render(contact_id=""))
    return await _contact_page(request, pool, contact_id)


@contact_pages_router.get("/contacts/{contact_id:path}", response_class=HTMLResponse)
async def contact_page(request: Request, pool: Pool, contact_id: _PathId) -> HTMLResponse:
    return await _contact_page(request, pool, contact_id)


async def _contact_page(request: Request, pool: Pool, contact_id: str) -> HTMLResponse:
    rows = await contact_rows(pool, contact_id)
    template = templates.get_template("contact.html")
    if not any(rows.values()):
        return HTMLResponse(template.render(contact_id=contact_id, missing=True), status_code=404)
    view = contact_view(contact_id, rows, request.app.state.web.funnels)
    page = template.render(
        contact_id=contact_id,
        view=view,
        rows=timeline(view),
        followups=await contact_followups(pool, contact_id),
        max_followups=MAX_FOLLOWUPS,
    )
    return HTMLResponse(page)


@contact_pages_router.get("/funnels/{name}/stages/{stage}", response_class=HTMLResponse)
async def stage_page(
    funnel: FunnelDep,
    pool: Pool,
    stage: str,
    size: _Size = PAGE_SIZE,
    after: datetime | None = None,
    after_id: _AfterId = None,
) -> HTMLResponse:
    """The contacts here now (current stage, not merged away), newest stay first."""
    if stage not in funnel.definition.stages:
        raise HTTPException(404, f"funnel {funnel.name!r} has no stage {stage!r}")
    if (after is None) != (after_id is None):
        raise HTTPException(422, "after and after_id go together (the next page's link)")
    keyset = None
    if after is not None and after_id is not None:
        start, _ = checked_range(after, None)
        assert start is not None
        keyset = (start, after_id)
    here = await contacts_here_now(pool, funnel=funnel.name, stage=stage, size=size, after=keyset)
    next_href = None
    if here.next_after is not None:
        entered_at, contact_id = here.next_after
        query = {"size": size, "after": entered_at.isoformat(), "after_id": contact_id}
        next_href = f"/funnels/{funnel.name}/stages/{stage}?{urlencode(query)}"
    page = templates.get_template("stage.html").render(
        funnel=funnel,
        stage=stage,
        here=here,
        first_page=keyset is None,
        next_href=next_href,
        size=size,
    )
    return HTMLResponse(page)
