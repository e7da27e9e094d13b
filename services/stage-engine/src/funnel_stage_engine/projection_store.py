"""Writes the projection of ``funnel.stage-changed.v1`` into PostgreSQL.

Idempotent by event id: each output is first inserted into its own table with
``ON CONFLICT (id) DO NOTHING``, and the per-contact summary is touched only
when that insert added a row, in the same transaction. Replaying the topic
therefore changes nothing, and an old event can never move a contact back:
its id is already in the history. Stage changes of one contact share a
partition and arrive in order, so applying new ids in offset order keeps the
current stage right.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
from funnel_shared.events import StageBlocked, StageChanged

__all__ = ["Output", "ProjectionStore"]

Output = StageChanged | StageBlocked


class ProjectionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(self, outputs: Sequence[Output]) -> int:
        """Store a batch in one transaction; returns how many were new."""
        added = 0
        async with self._pool.acquire() as connection, connection.transaction():
            for output in outputs:
                if isinstance(output, StageChanged):
                    added += await _stage_changed(connection, output)
                else:
                    added += await _stage_blocked(connection, output)
        return added

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


async def _stage_changed(connection: asyncpg.Connection, change: StageChanged) -> int:
    inserted = await connection.fetchval(
        """
        INSERT INTO stage_history
            (id, funnel, funnel_version, contact_id, from_stage, to_stage, furthest_stage,
             rule_id, cause_message_id, event_time, processed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (id) DO NOTHING
        RETURNING seq
        """,
        change.id,
        change.funnel,
        change.funnel_version,
        change.contact_id,
        change.from_stage,
        change.to_stage,
        change.furthest_stage,
        change.rule_id,
        change.cause_message_id,
        change.event_time,
        change.processed_at,
    )
    if inserted is None:
        return 0
    await connection.execute(
        """
        INSERT INTO contact_stages
            (contact_id, funnel, funnel_version, current_stage, furthest_stage, entered_at,
             stalled_at, last_change_id, traits)
        VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8::jsonb)
        ON CONFLICT (contact_id, funnel) DO UPDATE SET
            funnel_version = excluded.funnel_version,
            current_stage = excluded.current_stage,
            furthest_stage = excluded.furthest_stage,
            entered_at = excluded.entered_at,
            stalled_at = NULL,
            last_change_id = excluded.last_change_id,
            traits = contact_stages.traits || excluded.traits,
            updated_at = now()
        """,
        change.contact_id,
        change.funnel,
        change.funnel_version,
        change.to_stage,
        change.furthest_stage,
        change.event_time,
        change.id,
        json.dumps(change.traits),
    )
    return 1


async def _stage_blocked(connection: asyncpg.Connection, blocked: StageBlocked) -> int:
    status = await connection.execute(
        """
        INSERT INTO stage_blocks
            (id, funnel, funnel_version, contact_id, current_stage, attempted_stage,
             rule_id, cause_message_id, event_time, processed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (id) DO NOTHING
        """,
        blocked.id,
        blocked.funnel,
        blocked.funnel_version,
        blocked.contact_id,
        blocked.current_stage,
        blocked.attempted_stage,
        blocked.rule_id,
        blocked.cause_message_id,
        blocked.event_time,
        blocked.processed_at,
    )
    return 1 if status == "INSERT 0 1" else 0
