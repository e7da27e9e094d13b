"""Consume the stage-changed topic and schedule follow-ups; commit offsets only after storing.

The records of a fetched batch and everything they schedule are stored in one
transaction per partition (split only around records that are dead-lettered,
which are published after the records before them are stored). A crash between
storing and committing re-delivers the records, and the unique key on (stage
change id, rule id) absorbs the duplicates. A database error rewinds the
partition to the first unstored record, so nothing past it is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from funnel_shared.kafka import rejected_record
from funnel_shared.publishing import Publisher, publish

from funnel_notifier.domain.followups import Change
from funnel_notifier.domain.rules import LoadedRule
from funnel_notifier.domain.triggers import (
    Decoded,
    Ignored,
    Invalid,
    Trigger,
    decode,
    plan_followups,
)
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.postgres.intake import StageChangeStore

__all__ = ["StageChangeConsumer"]

log = logging.getLogger("funnel.notifier")


class StageChangeConsumer:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        store: StageChangeStore,
        publisher: Publisher,
        rejected_topic: str,
        retry_backoff_s: float,
        rules: list[LoadedRule] | None = None,
        metrics: NotifierMetrics | None = None,
        on_scheduled: Callable[[float], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._publisher = publisher
        self._rejected_topic = rejected_topic
        self._retry_backoff_s = retry_backoff_s
        self._rules = rules or []
        self._metrics = metrics or NotifierMetrics()
        # Tells the dispatcher in how many seconds the earliest new follow-up is due.
        self._on_scheduled = on_scheduled
        self.store_failures = 0  # Seen by tests and logs: how often storing was refused.

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                await self._handle_partition(tp, records)

    async def _handle_partition(self, tp: TopicPartition, records: list[Any]) -> None:
        done = 0  # Records stored (or settled) and safe to commit past.
        pending: list[tuple[Any, Trigger]] = []  # Decoded, to store together.
        try:
            for index, record in enumerate(records):
                decoded = decode(record.value)
                if isinstance(decoded, Decoded):
                    pending.append((record, decoded.trigger))
                    continue
                await self._store_all(pending)  # Everything before a rejection first.
                pending.clear()
                done = index
                if isinstance(decoded, Invalid):
                    await self._reject(record, decoded.errors)
                else:
                    self._skip(record, decoded)
                done = index + 1
            await self._store_all(pending)
            done = len(records)
        except Exception as exc:
            # Nothing past the last stored record is committed: rewind and retry
            # it after a pause rather than lose it.
            self.store_failures += 1
            failed = records[done]
            log.warning("storing offset %s of %s failed (%s); retrying", failed.offset, tp, exc)
            self._consumer.seek(tp, failed.offset)
            await asyncio.sleep(self._retry_backoff_s)
        if done:
            await self._consumer.commit({tp: records[done - 1].offset + 1})

    def _skip(self, record: Any, ignored: Ignored) -> None:
        self._metrics.ignored.labels(ignored.kind).inc()
        if not ignored.known:
            log.info(
                "skipping offset %s of %s: kind %r is unknown to this version",
                record.offset,
                record.topic,
                ignored.kind,
            )

    async def _store_all(self, pending: list[tuple[Any, Trigger]]) -> None:
        if not pending:
            return
        batch = [(trigger, plan_followups(trigger, self._rules)) for _, trigger in pending]
        scheduled = await self._store.record_many(batch)
        new = {followup_id for ids in scheduled for followup_id in ids}
        due = [item.due_at for _, items in batch for item in items if item.id in new]
        if due and self._on_scheduled is not None:
            self._on_scheduled((min(due) - datetime.now(UTC)).total_seconds())
        for (trigger, _), ids in zip(batch, scheduled, strict=True):
            self._metrics.followups.labels(Change.SCHEDULED).inc(len(ids))
            log.info(
                "%s %s: %s/%s %s, %d follow-up(s) scheduled",
                trigger.type,
                trigger.source_id,
                trigger.funnel,
                trigger.stage,
                trigger.contact_id,
                len(ids),
            )

    async def _reject(self, record: Any, errors: list[str]) -> None:
        await publish(
            self._publisher,
            self._rejected_topic,
            rejected_record(
                service="notifier",
                origin=record.topic,
                key=record.key.decode("utf-8", "backslashreplace") if record.key else None,
                original=record.value or b"",
                errors=errors,
            ),
        )
