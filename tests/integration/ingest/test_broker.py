"""Ingest over real HTTP (uvicorn) against the real test broker, read back with
confluent-kafka: every call type, batches with dead letters, and the official
Segment Python SDK as the client."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from funnel_shared.events import ContactEvent, RejectedRecord
from funnel_shared.settings import KafkaSettings, TopicSettings
from segment.analytics.client import Client as SegmentClient

from tests.support.ingest_server import serve_ingest
from tests.support.kafka_reader import Record, read_all, read_records

pytestmark = pytest.mark.integration

WRITE_KEY = "wk-integration"


def _events(records: list[Record]) -> list[tuple[Record, ContactEvent]]:
    return [(record, ContactEvent.model_validate_json(record.value)) for record in records]


async def test_every_call_type_lands_keyed_by_contact_with_headers_and_enrichment(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    user, anon = f"user-{uuid.uuid4().hex}", f"anon-{uuid.uuid4().hex}"
    # The sender's clock runs three hours fast; the event happened 5 s before sending.
    client_now = datetime.now(UTC) + timedelta(hours=3)
    skewed = {
        "timestamp": (client_now - timedelta(seconds=5)).isoformat(),
        "sentAt": client_now.isoformat(),
    }
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/track", {"userId": user, "event": "Signed Up", "properties": {"plan": "pro"}}),
        ("/v1/identify", {"userId": user, "traits": {"email": "zoë@example.com"}}),
        ("/v1/page", {"anonymousId": anon, "name": "Pricing"}),
        ("/v1/screen", {"anonymousId": anon, "name": "Home"}),
        ("/v1/group", {"userId": user, "groupId": "acme"}),
        ("/v1/alias", {"userId": user, "previousId": anon}),
        ("/v1/track", {"userId": "null", "anonymousId": anon, "event": "Skewed", **skewed}),
    ]
    before = datetime.now(UTC)
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"site": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, ""), timeout=60) as client:
            answers = [
                await client.post(path, json=body, headers={"X-Forwarded-For": "6.6.6.6"})
                for path, body in calls
            ]
    after = datetime.now(UTC)
    assert [answer.status_code for answer in answers] == [200] * len(calls), answers[-1].text
    sent_ids = [answer.json()["messageId"] for answer in answers]

    records = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.contact_events, expected=len(calls)
    )
    by_id = {event.message_id: (record, event) for record, event in _events(records)}
    assert sorted(by_id) == sorted(sent_ids)
    partitions: dict[bytes | None, set[int]] = {}
    for (path, _), message_id in zip(calls, sent_ids, strict=True):
        record, event = by_id[message_id]
        assert event.type == path.rsplit("/", 1)[1]
        assert record.key == event.contact_key.encode()
        assert event.source == "site"
        assert before <= event.received_at <= after
        assert event.context["ip"] == "127.0.0.1"  # No trusted proxy: X-Forwarded-For ignored.
        assert record.headers["ce_id"] == message_id
        assert record.headers["ce_type"] == f"segment.{event.type}"
        assert record.headers["ce_source"] == "/funnel/ingest/site"
        assert record.headers["ce_specversion"] == "1.0"
        assert record.headers["content-type"] == "application/json"
        assert datetime.fromisoformat(record.headers["ce_time"]) == event.timestamp
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(found) == 1 for found in partitions.values())  # One contact, one partition.
    assert {record.key for record, _ in by_id.values()} == {user.encode(), anon.encode()}

    _, skewed_event = by_id[sent_ids[-1]]
    assert skewed_event.user_id is None  # "null" is not an id.
    assert skewed_event.timestamp == skewed_event.received_at - timedelta(seconds=5)
    assert skewed_event.original_timestamp == client_now - timedelta(seconds=5)


async def test_a_batch_splits_into_events_and_dead_letters_on_the_broker(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    user = f"user-{uuid.uuid4().hex}"
    body = {
        "batch": [
            {"type": "track", "userId": user, "event": "Order Completed", "messageId": "b-1"},
            {"type": "track", "userId": user, "messageId": "b-2"},
            {"type": "identify", "userId": user, "messageId": "b-3"},
        ],
        "context": {"library": {"name": "curl"}},
    }
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"site": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            answer = await client.post("/v1/import", json={**body, "writeKey": WRITE_KEY})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    assert [item["index"] for item in answer.json()["rejected"]] == [1]

    events = _events(
        await asyncio.to_thread(
            read_records, kafka_settings.bootstrap_servers, topics.contact_events, expected=2
        )
    )
    assert sorted(event.message_id for _, event in events) == ["b-1", "b-3"]
    assert all(event.context["library"] == {"name": "curl"} for _, event in events)
    [dead] = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.rejected, expected=1
    )
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert dead.key == user.encode()
    assert rejected.origin == "/v1/import (site)"
    assert '"messageId": "b-2"' in rejected.original
    assert dead.headers["ce_type"] == "funnel.rejected.v1"


def _segment_session(url: str, errors: list[Exception]) -> list[str]:
    """Use the official Segment SDK as a customer would: one client in sync mode, one
    batching in its background thread with gzip. Returns the messageIds it sent."""
    sent: list[str] = []

    def on_error(error: Exception, _batch: object) -> None:
        errors.append(error)

    sync = SegmentClient(WRITE_KEY, host=url, sync_mode=True, gzip=True, max_retries=1)
    user = f"sdk-user-{uuid.uuid4().hex}"
    for _, message in (
        sync.identify(user, {"email": "sdk@example.com", "name": "Zoë 🎉"}),
        sync.track(user, "Signed Up", {"plan": "free"}),
        sync.page(user, "Docs", "Getting Started", {"url": "https://example.com/docs"}),
        sync.alias(f"anon-{user}", user),
        sync.group(user, "acme", {"name": "Acme"}),
    ):
        sent.append(message["messageId"])

    batching = SegmentClient(
        WRITE_KEY, host=url, gzip=True, upload_size=3, max_retries=1, on_error=on_error
    )
    other = f"sdk-user-{uuid.uuid4().hex}"
    calls = [
        batching.identify(other, {"plan": "pro"}),
        batching.track(other, "Order Completed", {"total": 42.5}),
        batching.page(other, None, "Pricing"),
        batching.alias(f"anon-{other}", other),
        batching.group(other, "globex"),
    ]
    sent.extend(message["messageId"] for _, message in calls)
    batching.flush()
    batching.join()
    return sent


async def test_the_segment_python_sdk_delivers_every_message_exactly_once(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    errors: list[Exception] = []
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"sdk": WRITE_KEY}) as url:
        sent = await asyncio.to_thread(_segment_session, url, errors)
    assert errors == []
    # Ingest has stopped, and it answered only after the broker acknowledged: the whole
    # topic is there to read, and a duplicate would show up as an extra record.
    records = await asyncio.to_thread(
        read_all,
        kafka_settings.bootstrap_servers,
        topics.contact_events,
        until=lambda records: len(records) >= len(sent),
    )
    events = _events(records)
    assert sorted(event.message_id for _, event in events) == sorted(sent)
    assert {event.type for _, event in events} == {"identify", "track", "page", "alias", "group"}
    assert all(event.source == "sdk" for _, event in events)
    assert all(event.context["library"]["name"] == "analytics-python" for _, event in events)
    traits = [event.traits for _, event in events if event.type == "identify"]
    assert {"email": "sdk@example.com", "name": "Zoë 🎉"} in traits and {"plan": "pro"} in traits
    # The SDK stamps sentAt once per batch; ingest carried it onto every message.
    assert all(event.sent_at is not None for _, event in events)
