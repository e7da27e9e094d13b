"""Faust's aiokafka transport, with the worker consumer's fetch wait from the settings.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and offers no
setting for it. On Apache Kafka a waiting fetch returns as soon as data arrives,
so the figure only bounds idle polling. The embedded broker does not wake a
waiting fetch (see the README, "The embedded broker"): there every quiet moment
would delay the next events by up to 1.5 s. The stage engine therefore uses
``KAFKA_FETCH_MAX_WAIT_MS``, like the other consumers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["Transport"]


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms: int | None = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # aiokafka reads it when the consumer starts and builds its fetcher.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer
