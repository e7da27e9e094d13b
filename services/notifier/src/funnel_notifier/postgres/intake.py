"""PostgreSQL intake: a triggering record, its follow-ups and their ``scheduled`` events.

Everything a batch of records causes is written in one transaction, so the
consumer can commit the Kafka offsets as soon as ``record_many`` returns.

``record_many`` tells two failures apart by exception class:

- PostgreSQL refused a value for what it is (``RecordRefused``): a ``DataError``
  (SQLSTATE class 22: U+0000 in text or JSON, a value out of range, a bad
  encoding), a program limit (class 54: an index row too large, as a
  3,000-character contact id makes), asyncpg refusing an argument before
  sending it, or an ``OverflowError`` converting a time. Storing the same record
  again fails the same way, so the consumer dead-letters it.
- anything else (the server unreachable, read-only, shutting down, out of
  connections, a deadlock) is raised as it is: a dependency is down, and the
  consumer retries the same records later.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import asyncpg
from funnel_shared.events import StageChanged

from funnel_notifier.domain.followups import scheduled
from funnel_notifier.domain.triggers import PlannedFollowUp, Trigger
from funnel_notifier.postgres._sql import literal
from funnel_notifier.postgres.outbox import followup_event, insert_events

__all__ = ["PostgresStageChangeStore", "RecordRefused", "StageChangeStore", "refusal"]


class RecordRefused(Exception):
    """The database refused the content of what was being stored; retrying cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(exc: BaseException) -> str | None:
    """Why the database refused a record's content, or None when ``exc`` is not about
    content (a connection, server or transaction problem: retry)."""
    if isinstance(exc, asyncpg.PostgresError) and isinstance(
        exc, asyncpg.exceptions.DataError | asyncpg.exceptions.ProgramLimitExceededError
    ):
        return f"refused by the database ({exc.sqlstate} {type(exc).__name__}): {exc}"
    # asyncpg's own DataError (an InterfaceError and a ValueError): an argument it
    # could not encode. Its name is taken in asyncpg.exceptions by SQLSTATE 22's.
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return f"refused by the database client ({type(exc).__name__}): {exc}"
    if isinstance(exc, OverflowError):
        return f"refused by the database client (OverflowError): {exc}"
    return None


class StageChangeStore(Protocol):
    async def record(self, trigger: Trigger, planned: list[PlannedFollowUp]) -> list[str]:
        """Store one trigger; return the ids of follow-ups it newly scheduled."""
        ...

    async def record_many(
        self, batch: list[tuple[Trigger, list[PlannedFollowUp]]]
    ) -> list[list[str]]:
        """Store triggers in one transaction; the newly scheduled ids, per trigger.

        Raises ``RecordRefused`` when the database refuses the content of one of them
        (nothing of the batch is stored); any other error means "retry later"."""
        ...


class PostgresStageChangeStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, trigger: Trigger, planned: list[PlannedFollowUp]) -> list[str]:
        [scheduled] = await self.record_many([(trigger, planned)])
        return scheduled

    async def record_many(
        self, batch: list[tuple[Trigger, list[PlannedFollowUp]]]
    ) -> list[list[str]]:
        """All or nothing: the statements run for every row as one pipelined batch
        each (``executemany``/``fetchmany``), in order, inside one transaction, so the
        result is as if the triggers were stored one after the other."""
        changes = [trigger.change for trigger, _ in batch if trigger.change is not None]
        planned = [item for _, items in batch for item in items]
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                await _store_stage_changes(connection, changes)
                rows = await _schedule(connection, planned)
                news = scheduled().changes
                await insert_events(
                    connection, [followup_event(row, change) for row in rows for change in news]
                )
        except Exception as exc:
            reason = refusal(exc)
            if reason is None:
                raise
            raise RecordRefused(reason) from exc
        inserted = {str(row["id"]) for row in rows}
        return [[item.id for item in items if item.id in inserted] for _, items in batch]

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


async def _store_stage_changes(connection: Any, changes: list[StageChanged]) -> None:
    if not changes:
        return
    # The primary key on the deterministic id makes redelivery harmless.
    await connection.executemany(
        """
        INSERT INTO received_stage_changes
            (id, funnel, contact_id, from_stage, to_stage, rule_id,
             cause_message_id, event_time, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
        ON CONFLICT (id) DO NOTHING
        """,
        [
            (
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
            for change in changes
        ],
    )
    # The latest stage per funnel, by event time, so a replayed old change
    # never moves a contact back. "Moved on" is judged against this row.
    await connection.executemany(
        """
        INSERT INTO followup_contact_stages (funnel, contact_id, stage, stage_change_id, event_time)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (funnel, contact_id) DO UPDATE
            SET stage = EXCLUDED.stage, stage_change_id = EXCLUDED.stage_change_id,
                event_time = EXCLUDED.event_time, updated_at = now()
            WHERE followup_contact_stages.event_time <= EXCLUDED.event_time
        """,
        [
            (change.funnel, change.contact_id, change.to_stage, change.id, change.event_time)
            for change in changes
        ],
    )


_SCHEDULE = f"""
    INSERT INTO followups
        (id, stage_change_id, rule_id, trigger, channel, funnel, contact_id, stage,
         unless_moved_on, record, status, due_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, {literal(scheduled().to)}, $11)
    ON CONFLICT (stage_change_id, rule_id) DO NOTHING
    RETURNING *
"""


async def _schedule(connection: Any, planned: list[PlannedFollowUp]) -> list[Any]:
    """The rows newly inserted, in order; a redelivery's are absorbed by the unique key."""
    if not planned:
        return []
    rows: list[Any] = await connection.fetchmany(
        _SCHEDULE,
        [
            (
                item.id,
                item.trigger.source_id,
                item.rule.rule.id,
                item.trigger.type,
                item.rule.rule.action.type,
                item.trigger.funnel,
                item.trigger.contact_id,
                item.trigger.stage,
                item.rule.rule.unless == "moved_on",
                json.dumps(item.trigger.record),
                item.due_at,
            )
            for item in planned
        ],
    )
    return rows
