"""The broker the bench runs against, unique topics per benchmark, and counting records.

The broker is ``KAFKA_BOOTSTRAP_SERVERS`` (with the other ``KAFKA_*`` settings)
when set, else the embedded one (Tansu) with the settings the dev stack uses.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from funnel_devstack.broker import EMBEDDED_BROKER_ENV, EmbeddedBroker
from funnel_devstack.processes import free_port
from funnel_shared.kafka import ensure_topics
from funnel_shared.settings import KafkaSettings, TopicSettings

__all__ = ["Stack", "count_records", "open_stack", "unique"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Stack:
    kafka_env: dict[str, str]
    broker_pid: int | None  # None: a broker we did not start, whose CPU we cannot see.
    workdir: Path

    @property
    def kafka(self) -> KafkaSettings:
        fields = {k.removeprefix("KAFKA_").lower(): v for k, v in self.kafka_env.items()}
        return KafkaSettings.model_validate(fields)

    @property
    def embedded(self) -> bool:
        return self.broker_pid is not None

    def processes(self, **pids: int) -> dict[str, int]:
        """Named pids to measure, with the broker's when it is ours."""
        return {**pids, **({"broker": self.broker_pid} if self.broker_pid else {})}

    async def topics(self, label: str) -> tuple[TopicSettings, dict[str, str]]:
        """Four fresh topics, created, and the environment that points a service at them."""
        suffix = unique(label)
        defaults = TopicSettings()
        topics = TopicSettings(
            contact_events=f"{defaults.contact_events}.{suffix}",
            stage_changed=f"{defaults.stage_changed}.{suffix}",
            followups=f"{defaults.followups}.{suffix}",
            rejected=f"{defaults.rejected}.{suffix}",
        )
        await ensure_topics(self.kafka, topics.all())
        env = {
            "TOPIC_CONTACT_EVENTS": topics.contact_events,
            "TOPIC_STAGE_CHANGED": topics.stage_changed,
            "TOPIC_FOLLOWUPS": topics.followups,
            "TOPIC_REJECTED": topics.rejected,
        }
        return topics, env


def _broker_pid(port: int) -> int:
    listener = f"tcp://127.0.0.1:{port}"
    for child in psutil.Process().children():
        if listener in child.cmdline():
            return child.pid
    raise RuntimeError("cannot find the embedded broker's process")


@contextmanager
def open_stack(workdir: Path, *, producer_batch_size: int | None = None) -> Iterator[Stack]:
    """The broker; ``producer_batch_size`` overrides ``KAFKA_PRODUCER_MAX_BATCH_SIZE``.

    The dev stack's one-record batches keep the embedded broker's end offsets
    right for table recovery, but they cap a producer at about one record per
    partition per round trip. No benchmark restarts a worker, so the bench can
    measure with the production default; the report says which was used.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    batch = (
        {}
        if producer_batch_size is None
        else {"KAFKA_PRODUCER_MAX_BATCH_SIZE": str(producer_batch_size)}
    )
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        env = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
        yield Stack(kafka_env={**env, **batch}, broker_pid=None, workdir=workdir)
        return
    port = free_port()
    with EmbeddedBroker(port=port, log_file=workdir / "broker.log") as broker:
        env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **EMBEDDED_BROKER_ENV}
        yield Stack(kafka_env={**env, **batch}, broker_pid=_broker_pid(port), workdir=workdir)


async def count_records(
    kafka: KafkaSettings, topics: Sequence[str], *, timeout_s: float = 30.0
) -> int:
    """Records on the topics (which all start empty here), from the high-water marks.

    The high-water mark comes from a fetch response, which the embedded broker
    gets right; its ListOffsets (``end_offsets``) comes out too low when a
    partition's last batch holds several records. One small fetch per
    partition is enough to learn it.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        await consumer.topics()  # Refreshes the metadata for the topics below.
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return 0
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high-water mark for some of {list(topics)}")
            await consumer.getmany(timeout_ms=200, max_records=1)
        return int(sum(consumer.highwater(tp) or 0 for tp in partitions))
    finally:
        await consumer.stop()
