"""Read topics in tests with confluent-kafka (librdkafka): a client not built on aiokafka,
so the wire format is checked by someone else's decoder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    partition: int


def read_records(
    bootstrap_servers: str, topic: str, *, expected: int, timeout_s: float = 60.0
) -> list[Record]:
    """Read from the start of ``topic`` until ``expected`` records arrived or time ran out."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading {topic}: {error}")
            headers = {k: (v or b"").decode() for k, v in (message.headers() or [])}
            records.append(
                Record(
                    key=message.key(),
                    value=message.value() or b"",
                    headers=headers,
                    partition=message.partition(),
                )
            )
    finally:
        consumer.close()
    return records


class TopicReader:
    """Reads a whole topic from the start, keeping every record, for as long as the test needs."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.records: list[Record] = []
        self._at_end: set[int] = set()
        self._topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"test-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "session.timeout.ms": 10000,
            }
        )
        self._consumer.subscribe([topic])

    def close(self) -> None:
        self._consumer.close()

    def read_until(self, done: Callable[[list[Record]], bool], *, timeout_s: float) -> bool:
        """Poll until ``done(records)`` holds; False when time ran out first."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records):
            if time.monotonic() >= deadline:
                return False
            self._poll_once()
        return True

    def read_to_end(self, *, timeout_s: float) -> bool:
        """Poll until every assigned partition has reported its end; False on time out."""

        def at_end(_: list[Record]) -> bool:
            assigned = {tp.partition for tp in self._consumer.assignment()}
            return bool(assigned) and assigned <= self._at_end

        return self.read_until(at_end, timeout_s=timeout_s)

    def _poll_once(self) -> None:
        message = self._consumer.poll(0.5)
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(message.partition())
                return
            raise RuntimeError(f"reading {self._topic}: {error}")
        self._at_end.discard(message.partition())
        headers = {k: (v or b"").decode() for k, v in (message.headers() or [])}
        self.records.append(
            Record(
                key=message.key(),
                value=message.value() or b"",
                headers=headers,
                partition=message.partition(),
            )
        )
