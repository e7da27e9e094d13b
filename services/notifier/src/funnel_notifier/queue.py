"""The follow-up queue in PostgreSQL: claim due rows, record attempts and outcomes.

Claiming uses ``FOR UPDATE SKIP LOCKED`` and commits the row as ``sending``
with an in-flight attempt *before* anything is sent, with a lease
(``claimed_until``) of the attempt timeout plus a grace. Another dispatcher
skips it until the lease runs out; if the sender died, the row is then taken
again and re-sent under the same follow-up id (= ``webhook-id``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from funnel_notifier.channels import Delivery, Outcome
from funnel_notifier.store import insert_event

__all__ = ["Claimed", "Finished", "FollowUpQueue"]

log = logging.getLogger("funnel.notifier.queue")


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    channel: str
    attempt: int  # This attempt's number over the follow-up's whole life.
    attempts_this_round: int  # Counted against the limit; reset by an operator's retry.
    due_at: datetime


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
        claimed: list[Claimed] = []
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
            for row in rows:
                outcome = await self._take(connection, row, lease_s, max_attempts)
                if isinstance(outcome, Claimed):
                    claimed.append(outcome)
                else:
                    settled.append(outcome)
        return claimed, settled

    async def _take(
        self, connection: Any, row: Any, lease_s: float, max_attempts: int
    ) -> Claimed | str:
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
        updated = await connection.fetchrow(
            """
            UPDATE followups
            SET status = 'sending', attempts = attempts + 1, total_attempts = total_attempts + 1,
                claimed_until = now() + make_interval(secs => $2), updated_at = now()
            WHERE id = $1
            RETURNING *
            """,
            followup_id,
            lease_s,
        )
        await connection.execute(
            "INSERT INTO followup_attempts (followup_id, number, outcome)"
            " VALUES ($1, $2, 'in_flight')",
            followup_id,
            updated["total_attempts"],
        )
        return Claimed(
            delivery=_delivery(updated),
            channel=updated["channel"],
            attempt=updated["total_attempts"],
            attempts_this_round=updated["attempts"],
            due_at=updated["due_at"],
        )

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

    async def finish(
        self, claimed: Claimed, outcome: Outcome, *, max_attempts: int, retry_in_s: float
    ) -> Finished:
        """Record the attempt's outcome and the follow-up's next state, with its events."""
        followup_id = claimed.delivery.followup_id
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT * FROM followups WHERE id = $1 FOR UPDATE", followup_id
            )
            if (
                row is None
                or row["status"] != "sending"
                or row["total_attempts"] != claimed.attempt
            ):
                # Our lease ran out and another dispatcher took the follow-up over.
                log.warning("follow-up %s: attempt %s finished late", followup_id, claimed.attempt)
                return Finished("stale")
            await connection.execute(
                """
                UPDATE followup_attempts
                SET outcome = $3, finished_at = now(), status_code = $4, error = $5,
                    retry_after_s = $6
                WHERE followup_id = $1 AND number = $2
                """,
                followup_id,
                claimed.attempt,
                "succeeded" if outcome.ok else "failed",
                outcome.status_code,
                outcome.error,
                outcome.retry_after_s,
            )
            if outcome.ok:
                row = await connection.fetchrow(
                    """
                    UPDATE followups SET status = 'sent', sent_at = now(), claimed_until = NULL,
                        last_error = NULL, updated_at = now()
                    WHERE id = $1 RETURNING *, extract(epoch FROM now() - due_at) AS latency
                    """,
                    followup_id,
                )
                await insert_event(connection, row, status="sent")
                return Finished("sent", latency_s=float(row["latency"]))
            dead = outcome.final or claimed.attempts_this_round >= max_attempts
            row = await connection.fetchrow(
                """
                UPDATE followups
                SET status = $2, last_error = $3, claimed_until = NULL, updated_at = now(),
                    due_at = CASE WHEN $2 = 'retrying'
                             THEN now() + make_interval(secs => $4) ELSE due_at END
                WHERE id = $1 RETURNING *
                """,
                followup_id,
                "dead" if dead else "retrying",
                outcome.error,
                retry_in_s,
            )
            await insert_event(connection, row, status="failed", error=outcome.error)
            if dead:
                await insert_event(connection, row, status="dead", error=outcome.error)
            return Finished("dead" if dead else "retrying")

    async def depth(self) -> int:
        """Follow-ups due now and waiting for a dispatcher."""
        value = await self._pool.fetchval(
            "SELECT count(*) FROM followups"
            " WHERE status IN ('scheduled', 'retrying') AND due_at <= now()"
        )
        return int(value)


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
