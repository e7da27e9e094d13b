"""JSON read API: ``/v1/contacts/{id}``, ``/v1/funnels``, ``/v1/funnels/{name}`` and its report."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.read.api_models import (
    ContactView,
    FunnelSummary,
    FunnelView,
    ReportView,
    contact_view,
    funnel_summary,
    funnel_view,
    report_view,
)
from funnel_stage_engine.read.reads import contact_rows, stage_counts
from funnel_stage_engine.read.report import FunnelReport, build_report

__all__ = [
    "MAX_CONTACT_ID_CHARS",
    "Pool",
    "api_router",
    "checked_range",
    "funnel_report",
    "get_funnel",
    "read_pool",
]

# Ingest refuses longer ids (255 characters by default); this only keeps a query bounded.
MAX_CONTACT_ID_CHARS = 1024

api_router = APIRouter(prefix="/v1")


def read_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool | None = request.app.state.web.projection.pool
    if pool is None:
        raise HTTPException(503, "the projection database is not connected yet")
    return pool


def get_funnel(request: Request, name: str) -> Funnel:
    funnel: Funnel | None = request.app.state.web.funnels.get(name)
    if funnel is None:
        raise HTTPException(404, f"no funnel named {name!r}")
    return funnel


Pool = Annotated[asyncpg.Pool, Depends(read_pool)]
FunnelDep = Annotated[Funnel, Depends(get_funnel)]
Since = Annotated[
    datetime | None,
    Query(description="Range start (inclusive), ISO 8601; the report needs a UTC midnight."),
]
Until = Annotated[
    datetime | None,
    Query(description="Range end (exclusive), ISO 8601; the report needs a UTC midnight."),
]
ContactId = Annotated[
    str,
    Path(
        max_length=MAX_CONTACT_ID_CHARS,
        # No control characters: PostgreSQL refuses U+0000 in text outright.
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The contact's id (a userId or anonymousId).",
    ),
]


def checked_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` in UTC (a time without a zone is UTC); 422 for a time that is
    out of range once in UTC (e.g. 9999-12-31T23:00-05:00) or a ``since`` after ``until``."""
    start, end = _in_utc("since", since), _in_utc("until", until)
    if start is not None and end is not None and start > end:
        raise HTTPException(422, f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    return start, end


def _in_utc(name: str, moment: datetime | None) -> datetime | None:
    aware = _aware(moment)
    if aware is None:
        return None
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise HTTPException(
            422, f"{name}: {moment} is out of range (years 1 to 9999, in UTC)"
        ) from None


@api_router.get("/contacts/{contact_id}")
async def get_contact(contact_id: ContactId, pool: Pool, request: Request) -> ContactView:
    """Per funnel: current and furthest stage, and every change with its rule and cause."""
    rows = await contact_rows(pool, contact_id)
    if not any(rows.values()):
        raise HTTPException(404, f"no contact {contact_id!r} in any funnel")
    return contact_view(contact_id, rows, request.app.state.web.funnels)


@api_router.get("/funnels")
async def list_funnels(request: Request) -> list[FunnelSummary]:
    funnels: dict[str, Funnel] = request.app.state.web.funnels
    return [funnel_summary(funnel) for funnel in funnels.values()]


@api_router.get("/funnels/{name}")
async def show_funnel(funnel: FunnelDep) -> FunnelView:
    return funnel_view(funnel)


@api_router.get("/funnels/{name}/report")
async def show_report(
    funnel: FunnelDep, pool: Pool, since: Since = None, until: Until = None
) -> ReportView:
    """Per stage: reached, current, step conversion, time to convert, stalled, blocked.

    ``since`` and ``until`` are whole UTC days (midnights): the report reads per-day sums."""
    start, end = checked_range(since, until)
    for name, moment in (("since", start), ("until", end)):
        if moment is not None and moment.timetz() != time(tzinfo=UTC):
            raise HTTPException(
                422,
                f"{name} ({moment.isoformat()}) is not a whole day: the report counts whole "
                "UTC days, so since and until are midnights in UTC (e.g. 2026-11-23 or "
                "2026-11-23T00:00:00Z)",
            )
    report = await funnel_report(pool, funnel, since=start, until=end)
    return report_view(funnel, report, since=_aware(since), until=_aware(until))


async def funnel_report(
    pool: asyncpg.Pool, funnel: Funnel, *, since: datetime | None, until: datetime | None
) -> FunnelReport:
    """The report over whole UTC days: ``since`` and ``until`` are midnights in UTC (the
    API refuses others with a 422; the pages' ranges are whole days)."""
    stages = funnel.definition.stages
    counts = await stage_counts(
        pool, funnel=funnel.name, stages=stages, since=_utc_day(since), until=_utc_day(until)
    )
    return build_report(funnel.name, stages, counts)


def _utc_day(moment: datetime | None) -> date | None:
    aware = _aware(moment)
    if aware is None:
        return None
    return aware.astimezone(UTC).date()


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
