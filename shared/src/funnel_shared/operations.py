"""The operational routes every service serves: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers 200 ``{"status": "ok"}`` while the process runs.
``/readyz`` answers 200 ``{"status": "ready"}``, or 503 with the reason in
``status`` (e.g. ``{"status": "broker unreachable"}``) so an operator sees why
without reading logs. ``/metrics`` is the Prometheus text format of one registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Readiness", "operations_router"]

# Why the service is not ready (the reason shown in /readyz), or None when it is.
Readiness = Callable[[], Awaitable[str | None]]


def operations_router(
    *,
    readiness: Readiness,
    registry: CollectorRegistry,
    ready_summary: str = "The service can do its work",
    not_ready: str = "Not ready; the reason is in status.",
    metrics_dependencies: Sequence[Any] = (),
) -> APIRouter:
    """The three routes over a readiness check and a metrics registry.

    ``ready_summary`` and ``not_ready`` describe ``/readyz`` in the OpenAPI
    document (what "ready" means for this service). ``metrics_dependencies``
    guard ``/metrics`` (e.g. ``funnel_shared.auth.Access.metrics()``); the
    health routes stay open.
    """
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary=ready_summary, responses={503: {"description": not_ready}})
    async def readyz() -> JSONResponse:
        problem = await readiness()
        if problem:
            return JSONResponse({"status": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        dependencies=list(metrics_dependencies),
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
