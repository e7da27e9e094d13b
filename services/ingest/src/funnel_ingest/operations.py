"""The analytics.js settings document; health, readiness and metrics come from
``funnel_shared.operations`` (see ``create_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from funnel_ingest.errors import ErrorBody, IngestError
from funnel_ingest.sdk_settings import sdk_settings
from funnel_ingest.services import Services

__all__ = ["router"]

router = APIRouter()


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
