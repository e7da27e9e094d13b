"""The follow-up event outbox: state changes are added to ``followup_events`` in the
transaction that makes them, and published from there to ``funnel.followups.v1``.

The rows are written in the same transaction as the state change, so an event
is never lost; one that was published and not yet marked is published again
with the same ``ce_id`` (at least once). A transaction-scoped advisory lock
lets one replica publish at a time, which keeps the events in order.

A batch of rows is buffered in order with one ``publish_all`` (the producer
keeps their order per partition) and marked published only once the broker
acknowledged every one of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from funnel_shared.cloudevents import cloudevent_headers
from funnel_shared.events import FollowUpEvent, followup_event_id
from funnel_shared.publishing import OutboundRecord, Publisher, publish_all

from funnel_notifier.domain.followups import Change, Transition, announces_due_time

__all__ = ["OutboxRelay", "followup_event", "insert_events", "insert_transition"]

_LOCK = "funnel-notifier-outbox"


class OutboxRelay:
    def __init__(self, *, pool: asyncpg.Pool, publisher: Publisher, topic: str) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topic = topic

    async def publish_pending(self, *, limit: int = 500) -> int:
        async with self._pool.acquire() as connection, connection.transaction():
            locked = await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", _LOCK
            )
            if not locked:
                return 0
            rows = await connection.fetch(
                "SELECT seq, id, contact_id, payload FROM followup_events"
                " WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                limit,
            )
            acks = await publish_all(self._publisher, [(self._topic, _record(row)) for row in rows])
            acks.raise_first()  # Nothing is marked: all of them go out again.
            if rows:
                await connection.execute(
                    "UPDATE followup_events SET published_at = now() WHERE seq = ANY($1::bigint[])",
                    [row["seq"] for row in rows],
                )
            return len(rows)


def _record(row: Any) -> OutboundRecord:
    """An outbox row as the record published on the follow-ups topic."""
    payload = row["payload"]
    data = json.loads(payload) if isinstance(payload, str) else payload
    return OutboundRecord(
        key=str(row["contact_id"]),
        value=json.dumps(data, ensure_ascii=False).encode(),
        headers=cloudevent_headers(
            event_id=str(row["id"]),
            source="/funnel/notifier",
            event_type="funnel.followup",
            time=datetime.fromisoformat(data["occurredAt"]),
        ),
    )


def followup_event(row: Any, change: Change, *, error: str | None = None) -> FollowUpEvent:
    """One state change of follow-up ``row`` (as it is now)."""
    attempt = int(row["total_attempts"])
    return FollowUpEvent(
        id=followup_event_id(followup_id=str(row["id"]), status=change.value, attempt=attempt),
        followup_id=str(row["id"]),
        status=change.value,
        rule_id=row["rule_id"],
        trigger=row["trigger"],
        channel=row["channel"],
        funnel=row["funnel"],
        contact_id=row["contact_id"],
        stage=row["stage"],
        stage_change_id=row["stage_change_id"],
        attempt=attempt,
        due_at=row["due_at"] if announces_due_time(change) else None,
        error=error,
        occurred_at=datetime.now(UTC),
    )


async def insert_transition(connection: Any, row: Any, transition: Transition) -> None:
    """Add the changes of follow-up ``row``'s transition (``row`` as it is now after
    it) to the outbox."""
    await insert_events(
        connection,
        [followup_event(row, change, error=transition.error) for change in transition.changes],
    )


async def insert_events(connection: Any, events: list[FollowUpEvent]) -> None:
    """Add state changes to the outbox in one statement, in the given order (``seq``)."""
    if not events:
        return
    await connection.execute(
        """
        INSERT INTO followup_events (id, contact_id, payload)
        SELECT e.id, e.contact_id, e.payload::jsonb
        FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY
            AS e(id, contact_id, payload, n)
        ORDER BY e.n
        ON CONFLICT (id) DO NOTHING
        """,
        [event.id for event in events],
        [event.contact_id for event in events],
        [event.model_dump_json() for event in events],
    )
