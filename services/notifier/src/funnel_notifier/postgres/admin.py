"""The admin API's queries: list and filter follow-ups, one with its attempts, retry a dead one."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from funnel_notifier.domain.followups import NotRetryable, Status, retried
from funnel_notifier.postgres.outbox import insert_transition

__all__ = ["NoSuchFollowUp", "find_followup", "list_followups", "retry_followup"]


class NoSuchFollowUp(LookupError):
    pass


async def list_followups(
    pool: asyncpg.Pool,
    *,
    status: Status | None,
    contact: str | None,
    rule: str | None,
    limit: int,
    offset: int,
) -> list[Any]:
    """Newest first."""
    rows: list[Any] = await pool.fetch(
        """
        SELECT * FROM followups
        WHERE ($1::text IS NULL OR status = $1)
          AND ($2::text IS NULL OR contact_id = $2)
          AND ($3::text IS NULL OR rule_id = $3)
        ORDER BY created_at DESC, id
        LIMIT $4 OFFSET $5
        """,
        None if status is None else status.value,
        contact,
        rule,
        limit,
        offset,
    )
    return rows


async def find_followup(pool: asyncpg.Pool, followup_id: uuid.UUID) -> tuple[Any, list[Any]]:
    """The follow-up's row and its attempts, in order. Raises ``NoSuchFollowUp``."""
    row = await pool.fetchrow("SELECT * FROM followups WHERE id = $1", followup_id)
    if row is None:
        raise NoSuchFollowUp(followup_id)
    attempts = await pool.fetch(
        "SELECT * FROM followup_attempts WHERE followup_id = $1 ORDER BY number", followup_id
    )
    return row, list(attempts)


async def retry_followup(pool: asyncpg.Pool, followup_id: uuid.UUID) -> Any:
    """Give a dead follow-up a fresh round of attempts, due now (same id, same webhook-id).

    Returns the row as it is now. Raises ``NoSuchFollowUp``, or ``NotRetryable`` when
    the follow-up is not dead.
    """
    transition = retried(Status.DEAD)
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            UPDATE followups SET status = $3, attempts = 0, due_at = now(),
                last_error = NULL, updated_at = now()
            WHERE id = $1 AND status = $2 RETURNING *
            """,
            followup_id,
            Status.DEAD.value,
            transition.to.value,
        )
        if row is None:
            status = await connection.fetchval(
                "SELECT status FROM followups WHERE id = $1", followup_id
            )
            if status is None:
                raise NoSuchFollowUp(followup_id)
            raise NotRetryable(Status(status))
        await insert_transition(connection, row, transition)
    return row
