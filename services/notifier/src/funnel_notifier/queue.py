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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from funnel_notifier.channels import Delivery, Outcome
from funnel_notifier.store import followup_event, insert_event, insert_events

__all__ = ["Attempted", "Claimed", "Finished", "FollowUpQueue"]

log = logging.getLogger("funnel.notifier.queue")


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    channel: str
    attempt: int  # This attempt's number over the follow-up's whole life.
    attempts_this_round: int  # Counted against the limit; reset by an operator's retry.
    due_at: datetime


@dataclass(frozen=True)
class Attempted:
    """A claimed follow-up after its attempt: what happened, and when to try again."""

    claimed: Claimed
    outcome: Outcome
    retry_in_s: float


@dataclass(frozen=True)
class Finished:
    status: str  # sent | retrying | dead | stale
    latency_s: float | None = None


class FollowUpQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[Claimed], list[str]]:
        """Take due follow-ups. Returns the claimed ones and the statuses of the others
        settled on the way (``cancelled``: moved on; ``dead``: an abandoned last attempt)."""
        settled: list[str] = []
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """
                SELECT f.*, cs.stage AS current_stage
                FROM followups f
                LEFT JOIN followup_contact_stages cs
                    ON cs.funnel = f.funnel AND cs.contact_id = f.contact_id
                WHERE (f.status IN ('scheduled', 'retrying') AND f.due_at <= now())
                   OR (f.status = 'sending' AND f.claimed_until < now())
                ORDER BY f.due_at
                LIMIT $1
                FOR UPDATE OF f SKIP LOCKED
                """,
                limit,
            )
            taken = []
            for row in rows:
                verdict = await self._check(connection, row, max_attempts)
                if verdict is None:
                    taken.append(row["id"])
                else:
                    settled.append(verdict)
            claimed = await self._take(connection, taken, lease_s)
        return claimed, settled

    async def _check(self, connection: Any, row: Any, max_attempts: int) -> str | None:
        """None when the row is to be sent; else the status it was settled in."""
        followup_id = row["id"]
        if row["status"] == "sending":
            # The process that claimed it died (or hung) mid-attempt.
            error = "the attempt did not finish: the dispatcher stopped or hung"
            await connection.execute(
                """
                UPDATE followup_attempts SET outcome = 'abandoned', finished_at = now(),
                    error = $3
                WHERE followup_id = $1 AND number = $2 AND outcome = 'in_flight'
                """,
                followup_id,
                row["total_attempts"],
                error,
            )
            log.warning("follow-up %s: taking over an abandoned attempt", followup_id)
            if row["attempts"] >= max_attempts:
                return await self._settle(connection, followup_id, "dead", error)
        moved_on = row["current_stage"] is not None and row["current_stage"] != row["stage"]
        if row["unless_moved_on"] and moved_on:
            error = f"the contact moved on to {row['current_stage']}"
            return await self._settle(connection, followup_id, "cancelled", error)
        return None

    async def _take(self, connection: Any, ids: list[Any], lease_s: float) -> list[Claimed]:
        """Mark the rows ``sending`` with an in-flight attempt each, in two statements."""
        if not ids:
            return []
        rows = await connection.fetch(
            """
            UPDATE followups
            SET status = 'sending', attempts = attempts + 1, total_attempts = total_attempts + 1,
                claimed_until = now() + make_interval(secs => $2), updated_at = now()
            WHERE id = ANY($1::uuid[])
            RETURNING *
            """,
            ids,
            lease_s,
        )
        await connection.execute(
            "INSERT INTO followup_attempts (followup_id, number, outcome)"
            " SELECT a.id, a.number, 'in_flight'"
            " FROM unnest($1::uuid[], $2::int[]) AS a(id, number)",
            [row["id"] for row in rows],
            [row["total_attempts"] for row in rows],
        )
        by_id = {row["id"]: row for row in rows}
        return [_claimed(by_id[followup_id]) for followup_id in ids]  # In due order.

    async def _settle(self, connection: Any, followup_id: Any, status: str, error: str) -> str:
        row = await connection.fetchrow(
            """
            UPDATE followups SET status = $2, last_error = $3, claimed_until = NULL,
                updated_at = now()
            WHERE id = $1 RETURNING *
            """,
            followup_id,
            status,
            error,
        )
        await insert_event(connection, row, status=status, error=error)
        return status

    async def finish(self, attempted: list[Attempted], *, max_attempts: int) -> list[Finished]:
        """Record finished attempts and their follow-ups' next states, with their events,
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
            live = {r["id"]: r["total_attempts"] for r in current if r["status"] == "sending"}
            mine = [a for a in attempted if live.get(_id(a)) == a.claimed.attempt]
            for item in attempted:
                if live.get(_id(item)) != item.claimed.attempt:
                    # Our lease ran out and another dispatcher took the follow-up over.
                    log.warning(
                        "follow-up %s: attempt %s finished late", _id(item), item.claimed.attempt
                    )
            await _record_attempts(connection, mine)
            finished = await _sent(connection, [a for a in mine if a.outcome.ok])
            failed = [a for a in mine if not a.outcome.ok]
            finished |= await _failed(connection, failed, max_attempts=max_attempts)
        return [finished.get(followup_id, Finished("stale")) for followup_id in ids]

    async def next_due_in_s(self) -> float | None:
        """Seconds until the earliest claimable follow-up is due (<= 0: due now); None:
        none. Rows another dispatcher is claiming right now are skipped, as ``claim`` would."""
        value = await self._pool.fetchval(
            """
            SELECT extract(epoch FROM due_at - now()) FROM followups
            WHERE status IN ('scheduled', 'retrying')
            ORDER BY due_at LIMIT 1
            FOR UPDATE SKIP LOCKED
            """
        )
        return None if value is None else float(value)

    async def depth(self) -> int:
        """Follow-ups due now and waiting for a dispatcher."""
        value = await self._pool.fetchval(
            "SELECT count(*) FROM followups"
            " WHERE status IN ('scheduled', 'retrying') AND due_at <= now()"
        )
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
        ["succeeded" if item.outcome.ok else "failed" for item in items],
        [item.outcome.status_code for item in items],
        [item.outcome.error for item in items],
        [item.outcome.retry_after_s for item in items],
    )


async def _sent(connection: Any, items: list[Attempted]) -> dict[str, Finished]:
    if not items:
        return {}
    rows = await connection.fetch(
        """
        UPDATE followups SET status = 'sent', sent_at = now(), claimed_until = NULL,
            last_error = NULL, updated_at = now()
        WHERE id = ANY($1::uuid[])
        RETURNING *, extract(epoch FROM now() - due_at) AS latency
        """,
        [_id(item) for item in items],
    )
    rows.sort(key=lambda row: str(row["id"]))
    await insert_events(connection, [followup_event(row, status="sent") for row in rows])
    return {str(row["id"]): Finished("sent", latency_s=float(row["latency"])) for row in rows}


async def _failed(
    connection: Any, items: list[Attempted], *, max_attempts: int
) -> dict[str, Finished]:
    if not items:
        return {}
    dead = {
        _id(item): item.outcome.final or item.claimed.attempts_this_round >= max_attempts
        for item in items
    }
    rows = await connection.fetch(
        """
        UPDATE followups f
        SET status = v.status, last_error = v.error, claimed_until = NULL, updated_at = now(),
            due_at = CASE WHEN v.status = 'retrying'
                     THEN now() + make_interval(secs => v.retry_in_s) ELSE f.due_at END
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[])
            AS v(id, status, error, retry_in_s)
        WHERE f.id = v.id
        RETURNING f.*
        """,
        list(dead),
        ["dead" if dead[_id(item)] else "retrying" for item in items],
        [item.outcome.error for item in items],
        [item.retry_in_s for item in items],
    )
    rows.sort(key=lambda row: str(row["id"]))
    events = []
    for row in rows:
        error = row["last_error"]
        events.append(followup_event(row, status="failed", error=error))
        if dead[str(row["id"])]:
            events.append(followup_event(row, status="dead", error=error))
    await insert_events(connection, events)
    return {
        str(row["id"]): Finished("dead" if dead[str(row["id"])] else "retrying") for row in rows
    }


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
