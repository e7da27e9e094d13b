"""The follow-up queue in PostgreSQL: claim due rows, record attempts and outcomes.

Claiming uses ``FOR UPDATE SKIP LOCKED`` and commits the row as ``sending``
with an in-flight attempt *before* anything is sent, with a lease
(``claimed_until``) of the attempt timeout plus a grace. Another dispatcher
skips it until the lease runs out; if the sender died, the row is then taken
again and re-sent under the same follow-up id (= ``webhook-id``).

A claimed batch is taken with one statement per table, and outcomes are
recorded for whatever attempts have finished together, in one transaction:
an attempt sent but not yet recorded when the process dies is sent again
after its lease, under the same id, never lost.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

from funnel_notifier.channels import Delivery
from funnel_notifier.dispatcher import Attempted, Claimed, Finished
from funnel_notifier.domain.followups import (
    ABANDONED_ERROR,
    CLAIMABLE,
    AttemptOutcome,
    Status,
    Transition,
    attempt_outcome,
    moved_on,
    taken_over,
)
from funnel_notifier.postgres._sql import literal, literals
from funnel_notifier.postgres.outbox import followup_event, insert_events, insert_transition

__all__ = ["PostgresFollowUpQueue"]

log = logging.getLogger("funnel.notifier.queue")

_CLAIMABLE = literals(CLAIMABLE)
_SENDING = literal(Status.SENDING)

_CLAIM = f"""
    SELECT f.*, cs.stage AS current_stage
    FROM followups f
    LEFT JOIN followup_contact_stages cs
        ON cs.funnel = f.funnel AND cs.contact_id = f.contact_id
    WHERE (f.status IN ({_CLAIMABLE}) AND f.due_at <= now())
       OR (f.status = {_SENDING} AND f.claimed_until < now())
    ORDER BY f.due_at
    LIMIT $1
    FOR UPDATE OF f SKIP LOCKED
"""

_ABANDON = f"""
    UPDATE followup_attempts SET outcome = {literal(AttemptOutcome.ABANDONED)},
        finished_at = now(), error = $3
    WHERE followup_id = $1 AND number = $2 AND outcome = {literal(AttemptOutcome.IN_FLIGHT)}
"""

_TAKE = f"""
    UPDATE followups
    SET status = {_SENDING}, attempts = attempts + 1, total_attempts = total_attempts + 1,
        claimed_until = now() + make_interval(secs => $2), updated_at = now()
    WHERE id = ANY($1::uuid[])
    RETURNING *
"""

_START_ATTEMPTS = f"""
    INSERT INTO followup_attempts (followup_id, number, outcome)
    SELECT a.id, a.number, {literal(AttemptOutcome.IN_FLIGHT)}
    FROM unnest($1::uuid[], $2::int[]) AS a(id, number)
"""

_NEXT_DUE = f"""
    SELECT extract(epoch FROM due_at - now()) FROM followups
    WHERE status IN ({_CLAIMABLE})
    ORDER BY due_at LIMIT 1
    FOR UPDATE SKIP LOCKED
"""

_DEPTH = f"SELECT count(*) FROM followups WHERE status IN ({_CLAIMABLE}) AND due_at <= now()"

_SENT = f"""
    UPDATE followups SET status = {literal(Status.SENT)}, sent_at = now(), claimed_until = NULL,
        last_error = NULL, updated_at = now()
    WHERE id = ANY($1::uuid[])
    RETURNING *, extract(epoch FROM now() - due_at) AS latency
"""

_FAILED = f"""
    UPDATE followups f
    SET status = v.status, last_error = v.error, claimed_until = NULL, updated_at = now(),
        due_at = CASE WHEN v.status = {literal(Status.RETRYING)}
                 THEN now() + make_interval(secs => v.retry_in_s) ELSE f.due_at END
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[])
        AS v(id, status, error, retry_in_s)
    WHERE f.id = v.id
    RETURNING f.*
"""


class PostgresFollowUpQueue:
    """The ``FollowUpQueue`` the dispatcher works from, in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[Claimed], list[Transition]]:
        """Take due follow-ups. Returns the claimed ones and the transitions of the others
        settled on the way (cancelled: moved on; dead: an abandoned last attempt)."""
        settled: list[Transition] = []
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(_CLAIM, limit)
            taken = []
            for row in rows:
                verdict = await self._check(connection, row, max_attempts)
                if verdict is None:
                    taken.append(row["id"])
                else:
                    settled.append(verdict)
            claimed = await self._take(connection, taken, lease_s)
        return claimed, settled

    async def _check(self, connection: Any, row: Any, max_attempts: int) -> Transition | None:
        """None when the row is to be sent; else the transition that settled it."""
        followup_id = row["id"]
        if Status(row["status"]) is Status.SENDING:
            # The process that claimed it died (or hung) mid-attempt.
            await connection.execute(_ABANDON, followup_id, row["total_attempts"], ABANDONED_ERROR)
            log.warning("follow-up %s: taking over an abandoned attempt", followup_id)
            dead = taken_over(attempts=row["attempts"], max_attempts=max_attempts)
            if dead is not None:
                return await self._settle(connection, followup_id, dead)
        cancelled = moved_on(
            unless_moved_on=row["unless_moved_on"],
            stage=row["stage"],
            current_stage=row["current_stage"],
        )
        if cancelled is not None:
            return await self._settle(connection, followup_id, cancelled)
        return None

    async def _take(self, connection: Any, ids: list[Any], lease_s: float) -> list[Claimed]:
        """Mark the rows ``sending`` with an in-flight attempt each, in two statements."""
        if not ids:
            return []
        rows = await connection.fetch(_TAKE, ids, lease_s)
        await connection.execute(
            _START_ATTEMPTS,
            [row["id"] for row in rows],
            [row["total_attempts"] for row in rows],
        )
        by_id = {row["id"]: row for row in rows}
        return [_claimed(by_id[followup_id]) for followup_id in ids]  # In due order.

    async def _settle(
        self, connection: Any, followup_id: Any, transition: Transition
    ) -> Transition:
        row = await connection.fetchrow(
            """
            UPDATE followups SET status = $2, last_error = $3, claimed_until = NULL,
                updated_at = now()
            WHERE id = $1 RETURNING *
            """,
            followup_id,
            transition.to.value,
            transition.error,
        )
        await insert_transition(connection, row, transition)
        return transition

    async def finish(self, attempted: list[Attempted]) -> list[Finished]:
        """Record finished attempts and their follow-ups' transitions, with their events,
        in one transaction. The result is in the order of ``attempted``."""
        if not attempted:
            return []
        ids = [item.claimed.delivery.followup_id for item in attempted]
        async with self._pool.acquire() as connection, connection.transaction():
            current = await connection.fetch(
                "SELECT id::text AS id, status, total_attempts FROM followups"
                " WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                ids,
            )
            live = {
                r["id"]: r["total_attempts"]
                for r in current
                if Status(r["status"]) is Status.SENDING
            }
            mine = [a for a in attempted if live.get(_id(a)) == a.claimed.attempt]
            for item in attempted:
                if live.get(_id(item)) != item.claimed.attempt:
                    # Our lease ran out and another dispatcher took the follow-up over.
                    log.warning(
                        "follow-up %s: attempt %s finished late", _id(item), item.claimed.attempt
                    )
            await _record_attempts(connection, mine)
            finished = await _sent(connection, [a for a in mine if a.transition.to is Status.SENT])
            failed = [a for a in mine if a.transition.to is not Status.SENT]
            finished |= await _failed(connection, failed)
        return [finished.get(followup_id, Finished(None)) for followup_id in ids]

    async def next_due_in_s(self) -> float | None:
        """Seconds until the earliest claimable follow-up is due (<= 0: due now); None:
        none. Rows another dispatcher is claiming right now are skipped, as ``claim`` would."""
        value = await self._pool.fetchval(_NEXT_DUE)
        return None if value is None else float(value)

    async def depth(self) -> int:
        """Follow-ups due now and waiting for a dispatcher."""
        value = await self._pool.fetchval(_DEPTH)
        return int(value)


def _id(item: Attempted) -> str:
    return item.claimed.delivery.followup_id


async def _record_attempts(connection: Any, items: list[Attempted]) -> None:
    if not items:
        return
    await connection.execute(
        """
        UPDATE followup_attempts a
        SET outcome = v.outcome, finished_at = now(), status_code = v.status_code,
            error = v.error, retry_after_s = v.retry_after_s
        FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::float8[])
            AS v(followup_id, number, outcome, status_code, error, retry_after_s)
        WHERE a.followup_id = v.followup_id AND a.number = v.number
        """,
        [_id(item) for item in items],
        [item.claimed.attempt for item in items],
        [attempt_outcome(item.outcome.ok).value for item in items],
        [item.outcome.status_code for item in items],
        [item.outcome.error for item in items],
        [item.outcome.retry_after_s for item in items],
    )


async def _sent(connection: Any, items: list[Attempted]) -> dict[str, Finished]:
    if not items:
        return {}
    rows = await connection.fetch(_SENT, [_id(item) for item in items])
    rows.sort(key=lambda row: str(row["id"]))
    by_id = {_id(item): item.transition for item in items}
    await insert_events(
        connection,
        [followup_event(row, change) for row in rows for change in by_id[str(row["id"])].changes],
    )
    return {
        str(row["id"]): Finished(by_id[str(row["id"])], latency_s=float(row["latency"]))
        for row in rows
    }


async def _failed(connection: Any, items: list[Attempted]) -> dict[str, Finished]:
    if not items:
        return {}
    by_id = {_id(item): item.transition for item in items}
    rows = await connection.fetch(
        _FAILED,
        list(by_id),
        [item.transition.to.value for item in items],
        [item.transition.error for item in items],
        [item.retry_in_s for item in items],
    )
    rows.sort(key=lambda row: str(row["id"]))
    events = []
    for row in rows:
        transition = by_id[str(row["id"])]
        error = row["last_error"]
        events += [followup_event(row, change, error=error) for change in transition.changes]
    await insert_events(connection, events)
    return {str(row["id"]): Finished(by_id[str(row["id"])]) for row in rows}


def _claimed(row: Any) -> Claimed:
    return Claimed(
        delivery=_delivery(row),
        channel=row["channel"],
        attempt=row["total_attempts"],
        attempts_this_round=row["attempts"],
        due_at=row["due_at"],
    )


def _delivery(row: Any) -> Delivery:
    record = row["record"]
    return Delivery(
        followup_id=str(row["id"]),
        rule_id=row["rule_id"],
        trigger=row["trigger"],
        funnel=row["funnel"],
        contact_id=row["contact_id"],
        stage=row["stage"],
        stage_change_id=row["stage_change_id"],
        record=json.loads(record) if isinstance(record, str) else dict(record),
    )
