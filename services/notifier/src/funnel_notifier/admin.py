"""Admin API: list and filter follow-ups, show one with its attempts, retry a dead one."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from funnel_notifier.store import insert_event

__all__ = ["router"]

router = APIRouter(prefix="/v1/followups", tags=["follow-ups"])

Status = Literal["scheduled", "sending", "retrying", "sent", "dead", "cancelled"]


class FollowUpView(BaseModel):
    id: str
    status: str
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


class AttemptView(BaseModel):
    number: int
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    status_code: int | None
    error: str | None
    retry_after_s: float | None


class FollowUpDetail(FollowUpView):
    record: dict[str, Any]
    attempts_made: list[AttemptView]


class FollowUpPage(BaseModel):
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
    rows = await _pool(request).fetch(
        """
        SELECT * FROM followups
        WHERE ($1::text IS NULL OR status = $1)
          AND ($2::text IS NULL OR contact_id = $2)
          AND ($3::text IS NULL OR rule_id = $3)
        ORDER BY created_at DESC, id
        LIMIT $4 OFFSET $5
        """,
        status,
        contact,
        rule,
        limit,
        offset,
    )
    items = [FollowUpView.model_validate(_view(row)) for row in rows]
    return FollowUpPage(items=items, limit=limit, offset=offset)


@router.get("/{followup_id}", response_model=FollowUpDetail)
async def show_followup(request: Request, followup_id: uuid.UUID) -> FollowUpDetail:
    pool = _pool(request)
    row = await pool.fetchrow("SELECT * FROM followups WHERE id = $1", followup_id)
    if row is None:
        raise HTTPException(404, "no such follow-up")
    attempts = await pool.fetch(
        "SELECT * FROM followup_attempts WHERE followup_id = $1 ORDER BY number", followup_id
    )
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
    async with _pool(request).acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            UPDATE followups SET status = 'scheduled', attempts = 0, due_at = now(),
                last_error = NULL, updated_at = now()
            WHERE id = $1 AND status = 'dead' RETURNING *
            """,
            followup_id,
        )
        if row is None:
            exists = await connection.fetchval(
                "SELECT status FROM followups WHERE id = $1", followup_id
            )
            if exists is None:
                raise HTTPException(404, "no such follow-up")
            raise HTTPException(409, f"only a dead follow-up can be retried; this one is {exists}")
        await insert_event(connection, row, status="scheduled")
    return FollowUpView.model_validate(_view(row))
