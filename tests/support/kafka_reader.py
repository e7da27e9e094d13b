"""Read topics in tests with confluent-kafka (librdkafka): a client not built on aiokafka,
so the wire format is checked by someone else's decoder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


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
    reader = TopicReader(bootstrap_servers, topic, timeout_s=timeout_s)
    try:
        reader.read_until(lambda records: len(records) >= expected, timeout_s=timeout_s)
    finally:
        reader.close()
    return reader.records


def read_all(
    bootstrap_servers: str,
    topic: str,
    *,
    until: Callable[[list[Record]], bool] = lambda _: True,
    timeout_s: float = 60.0,
) -> list[Record]:
    """Every record on ``topic``: once ``until(records)`` holds, read on to the end of each
    partition. Meant for a topic nobody writes to any more, so the end is the end."""
    reader = TopicReader(bootstrap_servers, topic, timeout_s=timeout_s)
    try:
        if not reader.read_until(until, timeout_s=timeout_s):
            raise TimeoutError(f"{topic}: the records looked for did not arrive in time")
        if not reader.read_to_end(timeout_s=timeout_s):
            raise TimeoutError(f"{topic}: did not reach the end of every partition")
    finally:
        reader.close()
    return reader.records


class TopicReader:
    """Reads a whole topic from the start, keeping every record, for as long as the test needs."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> None:
        self.records: list[Record] = []
        self._at_end: set[int] = set()
        self._topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"test-reader-{uuid.uuid4().hex}",  # Never joined: nothing commits.
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        # Every partition assigned by hand: a test reads the whole topic anyway, and a
        # group join would cost it half a session timeout on the embedded broker.
        self._consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for partition in self._partitions(timeout_s)
            ]
        )

    def _partitions(self, timeout_s: float) -> list[int]:
        """The topic's partitions, once the broker knows it (tests create topics first)."""
        deadline = time.monotonic() + timeout_s
        while True:
            metadata = self._consumer.list_topics(self._topic, timeout=max(1.0, timeout_s))
            found = metadata.topics.get(self._topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no partitions for {self._topic}: {found and found.error}")
            time.sleep(0.1)

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
