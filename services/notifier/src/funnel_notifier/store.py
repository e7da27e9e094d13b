"""PostgreSQL intake: a triggering record, its follow-ups and their ``scheduled`` events.

Everything one record causes is written in one transaction, so the consumer
can commit the Kafka offset as soon as ``record`` returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from funnel_shared.events import FollowUpEvent, StageChanged, followup_event_id

from funnel_notifier.triggers import PlannedFollowUp, Trigger

__all__ = ["PostgresStageChangeStore", "StageChangeStore", "insert_event"]


class StageChangeStore(Protocol):
    async def record(self, trigger: Trigger, planned: list[PlannedFollowUp]) -> list[str]:
        """Store one trigger; return the ids of follow-ups it newly scheduled."""
        ...


class PostgresStageChangeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, trigger: Trigger, planned: list[PlannedFollowUp]) -> list[str]:
        async with self._pool.acquire() as connection, connection.transaction():
            if trigger.change is not None:
                await _store_stage_change(connection, trigger.change)
            scheduled = []
            for item in planned:
                if await _schedule(connection, item):
                    scheduled.append(item.id)
            return scheduled

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


async def _store_stage_change(connection: Any, change: StageChanged) -> None:
    # The primary key on the deterministic id makes redelivery harmless.
    await connection.execute(
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
    # The latest stage per funnel, by event time, so a replayed old change
    # never moves a contact back. "Moved on" is judged against this row.
    await connection.execute(
        """
        INSERT INTO followup_contact_stages (funnel, contact_id, stage, stage_change_id, event_time)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (funnel, contact_id) DO UPDATE
            SET stage = EXCLUDED.stage, stage_change_id = EXCLUDED.stage_change_id,
                event_time = EXCLUDED.event_time, updated_at = now()
            WHERE followup_contact_stages.event_time <= EXCLUDED.event_time
        """,
        change.funnel,
        change.contact_id,
        change.to_stage,
        change.id,
        change.event_time,
    )


async def _schedule(connection: Any, item: PlannedFollowUp) -> bool:
    rule = item.rule.rule
    trigger = item.trigger
    inserted = await connection.fetchval(
        """
        INSERT INTO followups
            (id, stage_change_id, rule_id, trigger, channel, funnel, contact_id, stage,
             unless_moved_on, record, status, due_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, 'scheduled', $11)
        ON CONFLICT (stage_change_id, rule_id) DO NOTHING
        RETURNING id
        """,
        item.id,
        trigger.source_id,
        rule.id,
        trigger.type,
        rule.action.type,
        trigger.funnel,
        trigger.contact_id,
        trigger.stage,
        rule.unless == "moved_on",
        json.dumps(trigger.record),
        item.due_at,
    )
    if inserted is None:
        return False  # A redelivery: the unique key absorbed it.
    row = await connection.fetchrow("SELECT * FROM followups WHERE id = $1", item.id)
    await insert_event(connection, row, status="scheduled")
    return True


async def insert_event(
    connection: Any, row: Any, *, status: str, error: str | None = None
) -> FollowUpEvent:
    """Add one state change of follow-up ``row`` (as it is now) to the outbox."""
    attempt = int(row["total_attempts"])
    event = FollowUpEvent(
        id=followup_event_id(followup_id=str(row["id"]), status=status, attempt=attempt),
        followup_id=str(row["id"]),
        status=status,
        rule_id=row["rule_id"],
        trigger=row["trigger"],
        channel=row["channel"],
        funnel=row["funnel"],
        contact_id=row["contact_id"],
        stage=row["stage"],
        stage_change_id=row["stage_change_id"],
        attempt=attempt,
        due_at=row["due_at"] if status in ("scheduled", "failed") else None,
        error=error,
        occurred_at=datetime.now(UTC),
    )
    await connection.execute(
        """
        INSERT INTO followup_events (id, contact_id, payload) VALUES ($1, $2, $3::jsonb)
        ON CONFLICT (id) DO NOTHING
        """,
        event.id,
        event.contact_id,
        event.model_dump_json(),
    )
    return event
