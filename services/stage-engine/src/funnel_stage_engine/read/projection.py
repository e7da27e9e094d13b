"""The projection consumer: ``funnel.stage-changed.v1`` into PostgreSQL, beside the faust worker.

It is a plain aiokafka consumer in its own group (``<app id>-projection``),
run as a mode service on the worker's event loop. Offsets are committed only
after a fetched batch is stored (one transaction per fetch), so a restart
resumes where it left off and replays at most the last uncommitted batch,
which the store ignores by event id.

The projection never holds up the faust agent: when PostgreSQL is down it
retries in the background and ``/readyz`` says so.

A record's content can fail only that record. A value we cannot read as a
stage output, or one PostgreSQL refuses for its content (``CONTENT_ERRORS``:
a NUL in the traits, a contact id too long for the index, ...), is
dead-lettered to the rejected topic with the reason and the original; the
rest of the fetch is stored (the fetch is stored again record by record, one
savepoint each, to find it). The dead letters are acknowledged before the
offsets are committed, so a crash between repeats them rather than losing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from funnel_shared.events import AnyStageOutput, StageOutput
from funnel_shared.kafka import (
    AiokafkaPublisher,
    consumer_kwargs,
    producer_kwargs,
    rejected_record,
)
from funnel_shared.publishing import OutboundRecord, Publisher, publish_all
from funnel_shared.settings import DatabaseSettings, KafkaSettings
from mode import Service
from pydantic import TypeAdapter, ValidationError

from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection_store import CONTENT_ERRORS, ProjectionStore
from funnel_stage_engine.read.reads import ensure_report
from funnel_stage_engine.record_sizes import fit_dead_letter

__all__ = ["SERVICE", "Projection", "decode_outputs", "projection_service"]

log = logging.getLogger("funnel.stage_engine.projection")

SERVICE = "stage-engine-projection"
# The label of ``funnel_stage_engine_rejected`` for each kind of dead letter of the projection.
UNREADABLE = "projection_unreadable"
REFUSED = "projection_refused"

_outputs: TypeAdapter[Any] = TypeAdapter(StageOutput)


def decode_outputs(records: Sequence[Any]) -> list[AnyStageOutput]:
    """The records' values as stage outputs; a record we cannot read is logged and skipped.

    Only the stage engine writes this topic; a kind this version does not know
    (written by a newer engine) must not stop the projection.
    """
    outputs: list[AnyStageOutput] = []
    for record in records:
        try:
            outputs.append(_outputs.validate_json(record.value))
        except ValidationError as exc:
            log.warning("skipping offset %s of %s: %s", record.offset, record.topic, exc)
    return outputs


class Projection:
    """The projection's runtime: pool, store and consumer, and what ``/readyz`` needs."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        database: DatabaseSettings,
        topic: str,
        group_id: str,
        retry_backoff_s: float = 1.0,
        rejected_topic: str = "funnel.rejected.v1",
        metrics: StageEngineMetrics | None = None,
        max_record_bytes: int = 1_000_000,
        report_funnels: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        self._kafka = kafka
        # (funnel, stages) whose report aggregates are built at start, if they are missing
        # or the stage list changed (after an upgrade), rather than in a report request.
        self._report_funnels = report_funnels
        self._database = database
        self._topic = topic
        self._group_id = group_id
        self._retry_backoff_s = retry_backoff_s
        self._rejected_topic = rejected_topic
        self._metrics = metrics
        self._max_record_bytes = max_record_bytes
        self.publisher: Publisher | None = None
        self._producer: AIOKafkaProducer | None = None
        self.dead_lettered = 0  # Records this instance dead-lettered.
        self.pool: asyncpg.Pool | None = None
        self.store: ProjectionStore | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.last_error: str | None = "not started"
        self.records_seen = 0  # Records fetched since start, stored or not: shows where it resumed.
        self.committed: dict[TopicPartition, int] = {}  # Offsets this instance committed.

    @property
    def assigned(self) -> bool:
        return self.consumer is not None and bool(self.consumer.assignment())

    async def run(self) -> None:
        """Connect (retrying while PostgreSQL is away), then consume until cancelled."""
        try:
            while self.pool is None:
                try:
                    self.pool = await asyncpg.create_pool(
                        self._database.dsn, min_size=1, max_size=5, timeout=10
                    )
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    self._failed("connecting to PostgreSQL", exc)
                    await asyncio.sleep(self._retry_backoff_s)
            self.store = ProjectionStore(self.pool)
            await self._prepare_reports(self.pool)
            self._producer = AIOKafkaProducer(
                **producer_kwargs(self._kafka, client_id="projection")
            )
            await self._producer.start()
            self.publisher = AiokafkaPublisher(self._producer)
            self.consumer = AIOKafkaConsumer(
                self._topic,
                **consumer_kwargs(self._kafka, client_id="projection", group_id=self._group_id),
            )
            await self.consumer.start()
            self.last_error = None
            await self._consume(self.consumer, self.store)
        finally:
            await self.close()

    async def _prepare_reports(self, pool: asyncpg.Pool) -> None:
        """Build each funnel's report aggregates now if they are missing or stale (the
        first start after an upgrade: about a minute per million contacts), before any
        batch is stored. A failure is logged; the first report request tries again."""
        for funnel, stages in self._report_funnels:
            try:
                async with pool.acquire() as connection:
                    await ensure_report(connection, funnel, stages)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("could not prepare the report of %s: %r", funnel, exc)

    async def close(self) -> None:
        consumer, pool, producer = self.consumer, self.pool, self._producer
        self.consumer = self.pool = self.store = self._producer = self.publisher = None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await producer.stop()
        if pool is not None:
            await pool.close()

    async def _consume(self, consumer: AIOKafkaConsumer, store: ProjectionStore) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if batches:
                await self._store_batch(consumer, store, batches)

    async def _store_batch(
        self,
        consumer: AIOKafkaConsumer,
        store: ProjectionStore,
        batches: dict[TopicPartition, list[Any]],
    ) -> None:
        # Every partition's records of one fetch in one transaction and one offset commit:
        # a contact's records share a partition, whose order is kept.
        records = [r for records in batches.values() for r in records]
        self.records_seen += len(records)
        try:
            dead_letters = await self._store_records(store, records)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
            KafkaError,
        ) as exc:
            # Nothing of this batch was stored: rewind and try it again after a pause.
            self._failed(f"storing records of {sorted(tp.partition for tp in batches)}", exc)
            for tp, records in batches.items():
                with contextlib.suppress(KafkaError):  # Revoked meanwhile: its owner replays.
                    consumer.seek(tp, records[0].offset)
            await asyncio.sleep(self._retry_backoff_s)
            return
        self.last_error = None
        self.dead_lettered += dead_letters
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        log.info("projected %d records from %s", sum(map(len, batches.values())), list(batches))
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance took a partition away: its next owner replays from the last
            # commit, which the store ignores by id. Nothing is lost.
            log.warning("projection: cannot commit %s (%r); it will be replayed", offsets, exc)
            return
        self.committed.update(offsets)

    async def _store_records(self, store: ProjectionStore, records: Sequence[Any]) -> int:
        """Store what can be stored, dead-letter the rest; returns how many were dead-lettered.

        Raises when PostgreSQL or the broker is unavailable (nothing is then lost:
        the fetch is stored again, idempotently, and its dead letters sent again).
        """
        readable: list[tuple[Any, AnyStageOutput]] = []
        dead: list[tuple[str, Any, str]] = []  # (metric label, record, why)
        for record in records:
            try:
                readable.append((record, _outputs.validate_json(record.value)))
            except ValidationError as exc:
                dead.append((UNREADABLE, record, f"not a stage output: {exc}"))
        outputs = [output for _, output in readable]
        try:
            await store.apply(outputs)
        except CONTENT_ERRORS:
            # One of them is refused for its content: store them one by one to find it.
            for index, error in await store.apply_each(outputs):
                why = f"PostgreSQL refused it: {type(error).__name__}: {error}"
                dead.append((REFUSED, readable[index][0], why))
        if dead:
            assert self.publisher is not None  # Started in run(), before the consumer.
            letters = [
                (self._rejected_topic, _dead_letter(record, why, self._max_record_bytes))
                for _, record, why in dead
            ]
            acks = await publish_all(self.publisher, letters)
            acks.raise_first()
            for label, record, why in dead:
                log.warning(
                    "projection: dead-lettered offset %s of %s: %s",
                    record.offset,
                    record.topic,
                    why,
                )
                if self._metrics is not None:
                    self._metrics.rejected.labels(label).inc()
        return len(dead)

    def _failed(self, doing: str, exc: BaseException) -> None:
        self.last_error = f"{doing}: {exc!r}"
        log.warning("projection: %s", self.last_error)


def _dead_letter(record: Any, why: str, max_bytes: int) -> OutboundRecord:
    key = record.key.decode("utf-8", "backslashreplace") if record.key is not None else None

    def build(original: str, errors: list[str]) -> OutboundRecord:
        return rejected_record(
            service=SERVICE, origin=record.topic, key=key, original=original, errors=errors
        )

    return fit_dead_letter(
        build,
        original=record.value.decode("utf-8", "backslashreplace"),
        errors=[why, f"offset {record.offset} of partition {record.partition}"],
        max_bytes=max_bytes,
    )


def projection_service(projection: Projection) -> type[Service]:
    """A mode service class running ``projection`` (faust's ``app.service`` wants a class)."""

    class ProjectionService(Service):
        async def on_start(self) -> None:
            self.add_future(projection.run())

        @property
        def label(self) -> str:
            return "Projection: funnel.stage-changed.v1 -> PostgreSQL"

    return ProjectionService
