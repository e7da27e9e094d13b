"""Publish follow-up state changes from the outbox table to ``funnel.followups.v1``.

The rows are written in the same transaction as the state change, so an event
is never lost; one that was published and not yet marked is published again
with the same ``ce_id`` (at least once). A transaction-scoped advisory lock
lets one replica publish at a time, which keeps the events in order.

A batch of rows is handed to the producer one after the other (which keeps
their order per partition) and marked published only once the broker
acknowledged every one of them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from funnel_shared.cloudevents import cloudevent_headers

__all__ = ["OutboxRelay"]

_LOCK = "funnel-notifier-outbox"


class OutboxRelay:
    def __init__(self, *, pool: asyncpg.Pool, producer: AIOKafkaProducer, topic: str) -> None:
        self._pool = pool
        self._producer = producer
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
            acks = []
            for row in rows:
                payload = row["payload"]
                data = json.loads(payload) if isinstance(payload, str) else payload
                acks.append(
                    await self._producer.send(
                        self._topic,
                        key=str(row["contact_id"]).encode(),
                        value=json.dumps(data, ensure_ascii=False).encode(),
                        headers=cloudevent_headers(
                            event_id=str(row["id"]),
                            source="/funnel/notifier",
                            event_type="funnel.followup",
                            time=datetime.fromisoformat(data["occurredAt"]),
                        ),
                    )
                )
            results = await asyncio.gather(*acks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result  # Nothing is marked: all of them go out again.
            if rows:
                await connection.execute(
                    "UPDATE followup_events SET published_at = now() WHERE seq = ANY($1::bigint[])",
                    [row["seq"] for row in rows],
                )
            return len(rows)
