"""Producing to Kafka: the producer's lifetime, and sending a request's records.

A request is answered 2xx only once every one of its records is acknowledged
(``acks=all``). Anything else within the produce timeout is a 503 with
``Retry-After``: the client retries, and duplicates are removed downstream by
messageId.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from funnel_shared import publishing
from funnel_shared.kafka import AiokafkaPublisher, producer_kwargs
from funnel_shared.publishing import Acks, OutboundRecord, Publisher
from funnel_shared.settings import KafkaSettings

from funnel_ingest.errors import IngestError
from funnel_ingest.metrics import IngestMetrics

__all__ = ["BrokerUnavailable", "ProducerHandle", "publish_all"]

log = logging.getLogger("funnel.ingest")

_SEND_ERRORS = (KafkaError, TimeoutError, OSError)


class BrokerUnavailable(IngestError):
    """The broker did not acknowledge in time: the client must retry."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            503,
            "broker_unavailable",
            "the broker did not acknowledge in time; nothing is promised, retry later",
            headers={"Retry-After": str(retry_after_s)},
        )


class ProducerHandle:
    """The app's publisher. With a real producer, starts it lazily: a broker that is
    down at boot must not stop the process; requests get 503 until it is back."""

    def __init__(
        self, *, kafka: KafkaSettings | None, publisher: Publisher | None, timeout_s: float
    ) -> None:
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._publisher = publisher
        self._kafka = kafka
        self._started = publisher is not None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._started or self._kafka is None:
            return
        self._producer = AIOKafkaProducer(**producer_kwargs(self._kafka, client_id="ingest"))
        self._publisher = AiokafkaPublisher(self._producer)
        try:
            await self._start()
        except _SEND_ERRORS:
            log.warning("broker not reachable at start-up; will retry on demand")

    async def close(self) -> None:
        if self._producer is not None:
            # Bounded: a broker that is gone must not hold up shutdown forever.
            with contextlib.suppress(*_SEND_ERRORS):
                await asyncio.wait_for(self._producer.stop(), self._timeout_s)

    async def _start(self) -> None:
        async with self._lock:
            if self._started or self._producer is None:
                return
            await asyncio.wait_for(self._producer.start(), self._timeout_s)
            self._started = True

    async def publisher(self) -> Publisher:
        """The publisher, starting the producer first if it is not running yet."""
        if not self._started:
            await self._start()
        assert self._publisher is not None
        return self._publisher

    async def deliver(self, records: Sequence[tuple[str, OutboundRecord]]) -> Acks:
        """Send every record and wait for all the acks: one outcome per record."""
        publisher = self._publisher if self._started else await self.publisher()
        assert publisher is not None
        if len(records) == 1:
            # A single message (most requests): its ack awaited directly, as publish_all
            # would give it, without gathering one future.
            topic, record = records[0]
            ack = await publisher.send(topic, record)
            try:
                await ack
            except Exception as exc:  # A failure is an outcome, as publish_all returns it.
                return Acks([exc])
            return Acks([None])
        return await publishing.publish_all(publisher, records)

    async def ready(self) -> bool:
        """True when the broker answers a metadata request within the timeout."""
        if self._producer is None:
            return self._publisher is not None
        try:
            await self.publisher()
            await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), min(self._timeout_s, 5.0)
            )
        except _SEND_ERRORS:
            return False
        return True


async def publish_all(
    handle: ProducerHandle,
    records: Sequence[tuple[str, OutboundRecord]],
    *,
    timeout_s: float,
    retry_after_s: int,
    metrics: IngestMetrics,
) -> None:
    """Send every (topic, record); return once all are acked, else 503."""
    if not records:
        return
    started = time.monotonic()
    outcome = "error"
    try:
        async with asyncio.timeout(timeout_s):
            failures = (await handle.deliver(records)).failures
        for failure in failures:
            if not isinstance(failure, _SEND_ERRORS):
                raise failure
        if failures:
            log.warning(
                "%d of %d records not acknowledged: %s", len(failures), len(records), failures[0]
            )
            raise BrokerUnavailable(retry_after_s)
        outcome = "acked"
    except _SEND_ERRORS as exc:
        outcome = "timeout" if isinstance(exc, TimeoutError) else "error"
        log.warning("produce failed: %r", exc)
        raise BrokerUnavailable(retry_after_s) from exc
    finally:
        latency = metrics.labelled(metrics.produce_latency, outcome)
        latency.observe(time.monotonic() - started)
