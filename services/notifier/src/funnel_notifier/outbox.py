"""Publish follow-up state changes from the outbox table to ``funnel.followups.v1``.

The rows are written in the same transaction as the state change, so an event
is never lost; one that was published and not yet marked is published again
with the same ``ce_id`` (at least once). A transaction-scoped advisory lock
lets one replica publish at a time, which keeps the events in order.
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
from funnel_shared.cloudevents import cloudevent_headers
from funnel_shared.kafka import Publisher

__all__ = ["OutboxRelay"]

_LOCK = "funnel-notifier-outbox"


class OutboxRelay:
    def __init__(self, *, pool: asyncpg.Pool, publisher: Publisher, topic: str) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topic = topic

    async def publish_pending(self, *, limit: int = 200) -> int:
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
            for row in rows:
                payload = row["payload"]
                data = json.loads(payload) if isinstance(payload, str) else payload
                await self._publisher.publish(
                    self._topic,
                    key=row["contact_id"],
                    value=json.dumps(data, ensure_ascii=False).encode(),
                    headers=cloudevent_headers(
                        event_id=str(row["id"]),
                        source="/funnel/notifier",
                        event_type="funnel.followup",
                        time=datetime.fromisoformat(data["occurredAt"]),
                    ),
                )
            if rows:
                await connection.execute(
                    "UPDATE followup_events SET published_at = now() WHERE seq = ANY($1::bigint[])",
                    [row["seq"] for row in rows],
                )
            return len(rows)
