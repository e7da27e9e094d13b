"""Many concurrent batches and single calls on one ingest producer, against the real test
broker: every message of every 2xx is on the topic exactly once, dead letters included.

Ingest appends all of a request's records to the producer's buffer and awaits their acks
together; concurrent requests share the buffer and its produce requests. Run with the
session's batch size and with multi-record batches (the production default), which is
where requests' records share a broker batch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from funnel_shared.events import ContactEvent, RejectedRecord
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.ingest_server import serve_ingest

pytestmark = pytest.mark.integration

WRITE_KEY = "wk-concurrency"
SENDERS = 8
BATCHES_PER_SENDER = 5
BATCH = 60
SINGLES_PER_SENDER = 10


def _batch(run: str, sender: int, number: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {
            "type": "track",
            "userId": f"{run}-user-{sender}-{i % 13}",
            "event": "Viewed",
            "messageId": f"{run}-b-{sender}-{number}-{i}",
            "properties": {"i": i},
        }
        for i in range(BATCH)
    ]
    # One invalid item per batch: its dead letter shares the request's acks.
    items[7] = {"type": "track", "event": "No one", "messageId": f"{run}-dead-{sender}-{number}"}
    return items


async def _sender(url: str, run: str, sender: int) -> tuple[list[str], list[str], int]:
    accepted: list[str] = []
    dead: list[str] = []
    refused = 0
    async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, ""), timeout=60) as client:
        for number in range(BATCHES_PER_SENDER):
            items = _batch(run, sender, number)
            answer = await client.post("/v1/batch", json={"batch": items})
            if answer.status_code != 200:
                refused += 1
                continue
            assert answer.json()["accepted"] == BATCH - 1
            accepted += [item["messageId"] for item in items if "userId" in item]
            dead += [item["messageId"] for item in items if "userId" not in item]
        for number in range(SINGLES_PER_SENDER):
            message_id = f"{run}-s-{sender}-{number}"
            body = {"userId": f"{run}-single-{sender}", "event": "Clicked", "messageId": message_id}
            answer = await client.post("/v1/track", json=body)
            if answer.status_code != 200:
                refused += 1
                continue
            accepted.append(answer.json()["messageId"])
    return accepted, dead, refused


@pytest.mark.parametrize("max_batch_size", [None, 16384], ids=["session-batches", "16k-batches"])
async def test_concurrent_requests_put_every_acknowledged_message_on_the_topic_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, max_batch_size: int | None
) -> None:
    kafka = kafka_settings
    if max_batch_size is not None:
        kafka = kafka_settings.model_copy(update={"producer_max_batch_size": max_batch_size})
    run = uuid.uuid4().hex[:10]
    with serve_ingest(kafka=kafka, topics=topics, write_keys={"site": WRITE_KEY}) as url:
        results = await asyncio.gather(*(_sender(url, run, s) for s in range(SENDERS)))
    accepted = [message_id for result in results for message_id in result[0]]
    dead = [message_id for result in results for message_id in result[1]]
    assert sum(result[2] for result in results) == 0  # A healthy broker: nothing refused.
    assert len(accepted) == SENDERS * (BATCHES_PER_SENDER * (BATCH - 1) + SINGLES_PER_SENDER)

    # Every 2xx came after its acks, so reading each topic to its end sees them all.
    events = await asyncio.to_thread(_read_all, kafka, topics.contact_events)
    on_topic = Counter(ContactEvent.model_validate_json(value).message_id for value in events)
    assert sorted(on_topic) == sorted(accepted)
    assert set(on_topic.values()) == {1}
    letters = await asyncio.to_thread(_read_all, kafka, topics.rejected)
    originals = [RejectedRecord.model_validate_json(value).original for value in letters]
    assert len(originals) == len(dead)
    assert all(sum(f'"{message_id}"' in text for text in originals) == 1 for message_id in dead)


def _read_all(kafka: KafkaSettings, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    """Every record on ``topic``, read to the end of each partition. Partitions are assigned,
    not subscribed: no group join, which costs seconds on the embedded broker."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values: list[bytes] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while at_end != set(partitions):
            assert time.monotonic() < deadline, f"{topic} was not read to its end"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error, partition = message.error(), message.partition()
            assert partition is not None
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, str(error)
                at_end.add(partition)
                continue
            at_end.discard(partition)
            values.append(message.value() or b"")
        return values
    finally:
        consumer.close()
