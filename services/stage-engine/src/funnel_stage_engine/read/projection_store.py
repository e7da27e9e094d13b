"""Writes the projection of ``funnel.stage-changed.v1`` into PostgreSQL.

Idempotent by event id: each output is first inserted into its own table with
``ON CONFLICT (id) DO NOTHING``, and the per-contact summary is touched only
when that insert added a row, in the same transaction. Replaying the topic
therefore changes nothing, and an old event can never move a contact back:
its id is already in the history. Stage changes of one contact share a
partition and arrive in order, so applying new ids in offset order keeps the
current stage right. Running totals (``TotalChanged``) keep only the latest per
(contact, funnel, rule): a record replaces the row only when its ``sequence`` is
higher, so a replayed or late older record changes nothing.

A record PostgreSQL refuses for its content (``CONTENT_ERRORS``: a NUL in text,
an index row too large, a value out of range) is not a database that is down:
``apply_each`` stores a fetch record by record, each in its own savepoint, and
returns the refused ones for the projection to dead-letter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from funnel_shared.events import (
    AnyStageOutput,
    ContactMerged,
    StageBlocked,
    StageChanged,
    StageStalled,
    TotalChanged,
)

__all__ = ["CONTENT_ERRORS", "ProjectionStore"]

# What PostgreSQL (or asyncpg, encoding an argument) refuses because of a record's own
# values. Anything else (a connection lost, a read-only or shut-down server) is a
# dependency that is down: retried, never dead-lettered. Checked against asyncpg 0.31.
CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,  # Class 22: NUL in text, untranslatable characters, ranges.
    asyncpg.exceptions.ProgramLimitExceededError,  # Class 54: e.g. an index row too large.
    asyncpg.exceptions.IntegrityConstraintViolationError,  # Class 23: NOT NULL, CHECK.
    asyncpg_base.DataError,  # asyncpg's own: an argument it cannot encode (out of range).
    UnicodeError,  # A lone surrogate in a string.
    OverflowError,
)


class ProjectionStore:
    """``keep_report=False`` leaves the report aggregates alone: the code path from before
    them, the report benchmark's baseline (their figures then go stale)."""

    def __init__(self, pool: asyncpg.Pool, *, keep_report: bool = True) -> None:
        self._pool = pool
        self._keep_report = keep_report

    async def apply(self, outputs: Sequence[AnyStageOutput]) -> None:
        """Store a batch in one transaction, in order."""
        async with (
            self._pool.acquire() as connection,
            connection.transaction(),
            self._report(connection, outputs),
        ):
            await _apply_runs(connection, outputs)

    @contextlib.asynccontextmanager
    async def _report(
        self, connection: asyncpg.Connection, outputs: Sequence[AnyStageOutput]
    ) -> AsyncIterator[None]:
        """Keep the report aggregates (migration 0007) exact across storing ``outputs``:
        take away the figures of the contacts and people they touch, store, add them again
        from the rows as they are now. A replay therefore changes nothing."""
        if not self._keep_report:
            yield
            return
        contacts = sorted(_contacts(outputs))
        if not contacts:
            yield
            return
        funnels = sorted({o.funnel for o in outputs if not isinstance(o, TotalChanged)})
        begun = await connection.fetchrow(
            "SELECT persons, funnels FROM report_begin($1::text[], $2::text[])", contacts, funnels
        )
        yield
        if begun is not None and begun["funnels"]:
            await connection.execute(
                "SELECT report_end($1::text[], $2::text[], $3::text[])",
                begun["persons"],
                contacts,
                begun["funnels"],
            )

    async def apply_each(self, outputs: Sequence[AnyStageOutput]) -> list[tuple[int, Exception]]:
        """Store a batch in one transaction, each output in its own savepoint, in order.

        Returns (index, error) for every output refused for its content; the
        others are stored. Any other error is raised, and nothing is stored.
        """
        refused: list[tuple[int, Exception]] = []
        async with self._pool.acquire() as connection, connection.transaction():
            for index, output in enumerate(outputs):
                try:
                    async with connection.transaction(), self._report(connection, [output]):
                        await _apply_one(connection, output)
                except CONTENT_ERRORS as exc:
                    refused.append((index, exc))  # type: ignore[arg-type]
        return refused

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


def _contacts(outputs: Sequence[AnyStageOutput]) -> set[str]:
    # A running total is not in the report: it touches no figure.
    contacts = {o.contact_id for o in outputs if not isinstance(o, TotalChanged)}
    contacts |= {o.merged_contact_id for o in outputs if isinstance(o, ContactMerged)}
    return contacts


async def _apply_runs(connection: asyncpg.Connection, outputs: Sequence[AnyStageOutput]) -> None:
    for run in _runs(outputs):
        if isinstance(run[0], StageChanged):
            # One statement per change, pipelined: a single round trip for the run.
            await connection.executemany(_STAGE_CHANGED, [_change_args(c) for c in run])
            continue
        for output in run:
            await _apply_one(connection, output)


async def _apply_one(connection: asyncpg.Connection, output: AnyStageOutput) -> None:
    if isinstance(output, StageChanged):
        await connection.execute(_STAGE_CHANGED, *_change_args(output))
    elif isinstance(output, StageBlocked):
        await _stage_blocked(connection, output)
    elif isinstance(output, StageStalled):
        await _stage_stalled(connection, output)
    elif isinstance(output, ContactMerged):
        await _contact_merged(connection, output)
    elif isinstance(output, TotalChanged):
        await _total_changed(connection, output)


def _runs(outputs: Sequence[AnyStageOutput]) -> list[list[AnyStageOutput]]:
    """Consecutive outputs split into runs of stage changes and runs of anything else."""
    runs: list[list[AnyStageOutput]] = []
    for output in outputs:
        changed = isinstance(output, StageChanged)
        if runs and isinstance(runs[-1][0], StageChanged) == changed:
            runs[-1].append(output)
        else:
            runs.append([output])
    return runs


# The history row first; the contact's summary only if that row is new (the CTE returned
# it). A merge is keyed by the surviving contact, so it may be projected before the merged
# contact's own last changes (another partition): look it up every time.
_STAGE_CHANGED = """
    WITH inserted AS (
        INSERT INTO stage_history
            (id, funnel, funnel_version, contact_id, from_stage, to_stage, furthest_stage,
             rule_id, cause_message_id, cause_kind, event_time, processed_at, explanation,
             cause_event_type, cause_event_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14::jsonb, $15, $16)
        ON CONFLICT (id) DO NOTHING
        RETURNING seq
    )
    INSERT INTO contact_stages
        (contact_id, funnel, funnel_version, current_stage, furthest_stage, entered_at,
         stalled_at, last_change_id, traits, merged_into)
    SELECT $4, $2, $3, $6, $7, $11, NULL, $1, $13::jsonb,
           (SELECT contact_id FROM contact_merges WHERE merged_contact_id = $4 LIMIT 1)
    FROM inserted
    ON CONFLICT (contact_id, funnel) DO UPDATE SET
        funnel_version = excluded.funnel_version,
        current_stage = excluded.current_stage,
        furthest_stage = excluded.furthest_stage,
        entered_at = excluded.entered_at,
        stalled_at = NULL,
        last_change_id = excluded.last_change_id,
        traits = contact_stages.traits || excluded.traits,
        merged_into = excluded.merged_into,
        updated_at = now()
"""


def _change_args(change: AnyStageOutput) -> tuple[object, ...]:
    assert isinstance(change, StageChanged)
    return (
        change.id,
        change.funnel,
        change.funnel_version,
        change.contact_id,
        change.from_stage,
        change.to_stage,
        change.furthest_stage,
        change.rule_id,
        change.cause_message_id,
        change.cause_kind,
        change.event_time,
        change.processed_at,
        json.dumps(change.traits),
        None if change.explanation is None else change.explanation.model_dump_json(),
        change.cause_event_type,
        change.cause_event_name,
    )


async def _stage_blocked(connection: asyncpg.Connection, blocked: StageBlocked) -> int:
    status = await connection.execute(
        """
        INSERT INTO stage_blocks
            (id, funnel, funnel_version, contact_id, current_stage, attempted_stage,
             rule_id, cause_message_id, event_time, processed_at, cause_event_type,
             cause_event_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
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
        blocked.cause_event_type,
        blocked.cause_event_name,
    )
    return 1 if status == "INSERT 0 1" else 0


async def _stage_stalled(connection: asyncpg.Connection, stall: StageStalled) -> int:
    status = await connection.execute(
        """
        INSERT INTO stage_stalls
            (id, funnel, funnel_version, contact_id, stage, furthest_stage, entered_at,
             entry_id, stalled_after_seconds, move_to, event_time, processed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (id) DO NOTHING
        """,
        stall.id,
        stall.funnel,
        stall.funnel_version,
        stall.contact_id,
        stall.stage,
        stall.furthest_stage,
        stall.entered_at,
        stall.entry_id,
        stall.stalled_after_seconds,
        stall.move_to,
        stall.event_time,
        stall.processed_at,
    )
    if status != "INSERT 0 1":
        return 0
    # Stalls come once per stay, after the change that began it and before the next
    # one (same contact, same partition): the contact is still in that stage.
    await connection.execute(
        """
        UPDATE contact_stages SET stalled_at = $4, updated_at = now()
        WHERE contact_id = $1 AND funnel = $2 AND current_stage = $3
        """,
        stall.contact_id,
        stall.funnel,
        stall.stage,
        stall.event_time,
    )
    return 1


async def _contact_merged(connection: asyncpg.Connection, merged: ContactMerged) -> int:
    status = await connection.execute(
        """
        INSERT INTO contact_merges
            (id, merge_id, funnel, funnel_version, contact_id, merged_contact_id,
             current_stage, furthest_stage, merged_current_stage, merged_furthest_stage,
             cause_message_id, event_time, processed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (id) DO NOTHING
        """,
        merged.id,
        merged.merge_id,
        merged.funnel,
        merged.funnel_version,
        merged.contact_id,
        merged.merged_contact_id,
        merged.current_stage,
        merged.furthest_stage,
        merged.merged_current_stage,
        merged.merged_furthest_stage,
        merged.cause_message_id,
        merged.event_time,
        merged.processed_at,
    )
    if status != "INSERT 0 1":
        return 0
    # The merged contact no longer stands anywhere on its own. The survivor keeps the
    # furthest stage of both; a move of its current stage comes as its own stage change.
    await connection.execute(
        "UPDATE contact_stages SET merged_into = $1, updated_at = now() WHERE contact_id = $2",
        merged.contact_id,
        merged.merged_contact_id,
    )
    await connection.execute(
        """
        UPDATE contact_stages
        SET furthest_stage = $3, traits = $4::jsonb || traits, updated_at = now()
        WHERE contact_id = $1 AND funnel = $2
        """,
        merged.contact_id,
        merged.funnel,
        merged.furthest_stage,
        json.dumps(merged.traits),
    )
    return 1


async def _total_changed(connection: asyncpg.Connection, total: TotalChanged) -> int:
    status = await connection.execute(
        """
        INSERT INTO contact_totals
            (contact_id, funnel, rule_id, funnel_version, to_stage, property, total, at_least,
             within_seconds, amounts, ignored, sequence, last_id, cause_message_id, cause_kind,
             event_time, processed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
        ON CONFLICT (contact_id, funnel, rule_id) DO UPDATE SET
            funnel_version = excluded.funnel_version,
            to_stage = excluded.to_stage,
            property = excluded.property,
            total = excluded.total,
            at_least = excluded.at_least,
            within_seconds = excluded.within_seconds,
            amounts = excluded.amounts,
            ignored = excluded.ignored,
            sequence = excluded.sequence,
            last_id = excluded.last_id,
            cause_message_id = excluded.cause_message_id,
            cause_kind = excluded.cause_kind,
            event_time = excluded.event_time,
            processed_at = excluded.processed_at,
            updated_at = now()
        WHERE excluded.sequence > contact_totals.sequence
        """,
        total.contact_id,
        total.funnel,
        total.rule_id,
        total.funnel_version,
        total.to_stage,
        total.property,
        total.total,
        total.at_least,
        total.within_seconds,
        total.amounts,
        total.ignored,
        total.sequence,
        total.id,
        total.cause_message_id,
        total.cause_kind,
        total.event_time,
        total.processed_at,
    )
    return 1 if status == "INSERT 0 1" else 0
