"""Admin API: list and filter follow-ups, show one with its attempts, retry a dead one.

JSON is camelCase, like every HTTP API and event (``funnel_shared.camel``).

The routes; the queries are in ``funnel_notifier.postgres.admin``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from funnel_shared.camel import CamelModel

from funnel_notifier.domain.followups import AttemptOutcome, NotRetryable, Status
from funnel_notifier.postgres import admin as queries

__all__ = ["router"]

router = APIRouter(prefix="/v1/followups", tags=["follow-ups"])


class FollowUpView(CamelModel):
    id: str
    status: Status
    rule_id: str
    trigger: str
    channel: str
    funnel: str
    contact_id: str
    stage: str | None
    stage_change_id: str
    due_at: datetime
    attempts: int
    total_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class AttemptView(CamelModel):
    number: int
    outcome: AttemptOutcome
    started_at: datetime
    finished_at: datetime | None
    status_code: int | None
    error: str | None
    retry_after_s: float | None


class FollowUpDetail(FollowUpView):
    record: dict[str, Any]
    attempts_made: list[AttemptView]


class FollowUpPage(CamelModel):
    items: list[FollowUpView]
    limit: int
    offset: int


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def _view(row: Any) -> dict[str, Any]:
    data = {key: row[key] for key in FollowUpView.model_fields}
    data["id"] = str(row["id"])
    return data


@router.get("", response_model=FollowUpPage)
async def list_followups(
    request: Request,
    status: Status | None = None,
    contact: str | None = None,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FollowUpPage:
    rows = await queries.list_followups(
        _pool(request), status=status, contact=contact, rule=rule, limit=limit, offset=offset
    )
    items = [FollowUpView.model_validate(_view(row)) for row in rows]
    return FollowUpPage(items=items, limit=limit, offset=offset)


@router.get("/{followup_id}", response_model=FollowUpDetail)
async def show_followup(request: Request, followup_id: uuid.UUID) -> FollowUpDetail:
    try:
        row, attempts = await queries.find_followup(_pool(request), followup_id)
    except queries.NoSuchFollowUp:
        raise HTTPException(404, "no such follow-up") from None
    record = row["record"]
    return FollowUpDetail(
        **_view(row),
        record=json.loads(record) if isinstance(record, str) else record,
        attempts_made=[
            AttemptView.model_validate({k: a[k] for k in AttemptView.model_fields})
            for a in attempts
        ],
    )


@router.post("/{followup_id}/retry", response_model=FollowUpView)
async def retry_followup(request: Request, followup_id: uuid.UUID) -> FollowUpView:
    """Give a dead follow-up a fresh round of attempts, due now (same id, same webhook-id)."""
    try:
        row = await queries.retry_followup(_pool(request), followup_id)
    except queries.NoSuchFollowUp:
        raise HTTPException(404, "no such follow-up") from None
    except NotRetryable as exc:
        raise HTTPException(409, str(exc)) from None
    return FollowUpView.model_validate(_view(row))
