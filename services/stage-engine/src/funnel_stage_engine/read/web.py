"""The stage engine's HTTP app (FastAPI), served by uvicorn on the faust worker's loop.

Operations: ``/healthz``, ``/readyz`` and ``/metrics``, from the shared
``funnel_shared.operations.operations_router``. The read API and the
funnel, stage and contact pages come from ``api.py``, ``pages.py`` and
``contact_pages.py``. Faust's own aiohttp server
is replaced (``faust.contrib.asgi.serve_asgi``), so one HTTP stack serves all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from funnel_shared.auth import Access
from funnel_shared.operations import operations_router

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.api import api_router
from funnel_stage_engine.read.contact_pages import contact_pages_router
from funnel_stage_engine.read.pages import pages_router
from funnel_stage_engine.read.projection import Projection

__all__ = ["WebState", "create_web_app"]


@dataclass
class WebState:
    """What the routes read: the funnels, the projection, the metrics and the worker's state."""

    funnels: dict[str, Funnel]
    projection: Projection
    metrics: StageEngineMetrics
    # "" when the faust worker is ready, else why not (e.g. "joining consumer group").
    worker_status: Callable[[], str]


def create_web_app(
    *,
    funnels: Sequence[Funnel],
    projection: Projection,
    metrics: StageEngineMetrics,
    worker_status: Callable[[], str],
    access: Access | None = None,
) -> FastAPI:
    """The app; ``access`` guards the read API, the pages and /metrics (none: open)."""
    access = access or Access()
    app = FastAPI(title="Funnel stage engine", version="0.1.0")
    app.state.web = WebState(
        funnels={funnel.name: funnel for funnel in funnels},
        projection=projection,
        metrics=metrics,
        worker_status=worker_status,
    )

    @app.exception_handler(HTTPException)
    async def json_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Headers too: a 401 carries its WWW-Authenticate challenge.
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def readiness() -> str | None:
        return app.state.web.worker_status() or await _projection_problem(projection) or None

    app.include_router(
        operations_router(
            readiness=readiness,
            registry=metrics.registry,
            ready_summary="The worker has joined its group and the projection is up",
            not_ready="Not ready (e.g. during a rebalance); the reason is in status.",
            metrics_dependencies=access.metrics(),
        )
    )
    app.include_router(api_router, dependencies=access.api())
    app.include_router(pages_router, dependencies=access.pages())
    app.include_router(contact_pages_router, dependencies=access.pages())
    return app


async def _projection_problem(projection: Projection) -> str:
    if projection.last_error is not None or projection.store is None:
        return f"projection: {projection.last_error or 'starting'}"
    try:
        await asyncio.wait_for(projection.store.ping(), timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"projection database unreachable: {exc!r}"
    if not projection.assigned:
        return "projection joining consumer group"
    return ""
