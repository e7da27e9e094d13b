"""Operational routes: health, readiness, metrics, and the analytics.js settings document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from funnel_ingest.errors import ErrorBody, IngestError
from funnel_ingest.sdk_settings import sdk_settings
from funnel_ingest.services import Services

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="The broker is reachable",
    responses={503: {"description": "The broker did not answer."}},
)
async def readyz(services: Services) -> JSONResponse:
    if await services.producer.ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "broker unreachable"}, status_code=503)


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(services: Services) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/projects/{write_key}/settings",
    tags=["analytics.js"],
    summary="Settings document for analytics.js loaded with cdnURL pointing here",
    responses={404: {"model": ErrorBody, "description": "Unknown write key."}},
)
async def project_settings(write_key: str, request: Request, services: Services) -> Any:
    if services.settings.source_for_key(write_key) is None:
        raise IngestError(404, "not_found", "unknown write key")
    public_url = services.settings.public_url or str(request.base_url)
    return sdk_settings(write_key=write_key, public_url=public_url)
