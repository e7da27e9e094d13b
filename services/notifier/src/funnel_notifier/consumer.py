"""Consume stage changes and store them; commit offsets only after the rows are stored."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from funnel_shared.events import StageChanged
from funnel_shared.kafka import Publisher, publish, rejected_record
from pydantic import ValidationError

from funnel_notifier.store import StageChangeStore

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
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._publisher = publisher
        self._rejected_topic = rejected_topic
        self._retry_backoff_s = retry_backoff_s

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                await self._handle_partition(tp, records)

    async def _handle_partition(self, tp: TopicPartition, records: list[Any]) -> None:
        done = 0
        try:
            for record in records:
                await self._handle(record)
                done += 1
        except Exception as exc:
            # Nothing past the last stored record is committed: rewind and retry
            # it after a pause rather than lose it.
            failed = records[done]
            log.warning("storing offset %s of %s failed (%s); retrying", failed.offset, tp, exc)
            self._consumer.seek(tp, failed.offset)
            await asyncio.sleep(self._retry_backoff_s)
        if done:
            await self._consumer.commit({tp: records[done - 1].offset + 1})

    async def _handle(self, record: Any) -> None:
        try:
            change = StageChanged.model_validate_json(record.value)
        except ValidationError as exc:
            await publish(
                self._publisher,
                self._rejected_topic,
                rejected_record(
                    service="notifier",
                    origin=record.topic,
                    key=record.key.decode("utf-8", "backslashreplace") if record.key else None,
                    original=record.value,
                    errors=[str(error["msg"]) for error in exc.errors()],
                ),
            )
            return
        stored = await self._store.record(change)
        log.info(
            "stage change %s %s: %s %s -> %s",
            change.id,
            "stored" if stored else "already stored",
            change.funnel,
            change.from_stage,
            change.to_stage,
        )
