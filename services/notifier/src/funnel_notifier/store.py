"""PostgreSQL persistence for the notifier."""

from __future__ import annotations

from typing import Protocol

import asyncpg
from funnel_shared.events import StageChanged

__all__ = ["PostgresStageChangeStore", "StageChangeStore"]


class StageChangeStore(Protocol):
    async def record(self, change: StageChanged) -> bool:
        """Store one stage change; False when it was already stored."""
        ...


class PostgresStageChangeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, change: StageChanged) -> bool:
        # The primary key on the deterministic id makes redelivery harmless.
        status = await self._pool.execute(
            """
            INSERT INTO received_stage_changes
                (id, funnel, contact_id, from_stage, to_stage, rule_id,
                 cause_message_id, event_time, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
            ON CONFLICT (id) DO NOTHING
            """,
            change.id,
            change.funnel,
            change.contact_id,
            change.from_stage,
            change.to_stage,
            change.rule_id,
            change.cause_message_id,
            change.event_time,
            change.model_dump_json(),
        )
        return bool(status == "INSERT 0 1")

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
