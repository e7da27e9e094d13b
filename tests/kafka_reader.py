"""Read topics in tests with confluent-kafka (librdkafka): a client not built on aiokafka,
so the wire format is checked by someone else's decoder."""

from __future__ import annotations

import time
import uuid
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
