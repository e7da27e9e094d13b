"""Issue 15's hostile inputs against ingest over real HTTP (uvicorn) and the real broker:
the bad request is refused with a clear error and later contacts land on the topic; a
large body is parsed while /healthz and small requests are answered (order, not time)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import funnel_ingest.tracking
import httpx
import pytest
from funnel_shared.events import ContactEvent
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.ingest_server import serve_ingest
from tests.support.kafka_reader import read_records

pytestmark = pytest.mark.integration

WRITE_KEY = "wk-hostile"
AUTH = (WRITE_KEY, "")


async def _later_contacts_land(
    client: httpx.AsyncClient, kafka: KafkaSettings, topics: TopicSettings, count: int
) -> list[ContactEvent]:
    """``count`` later contacts are accepted and every one is on the topic."""
    users = [f"later-{uuid.uuid4().hex}" for _ in range(count)]
    for user in users:
        answer = await client.post("/v1/identify", json={"userId": user, "traits": {"n": 1}})
        assert answer.status_code == 200, answer.text
    records = await asyncio.to_thread(
        read_records, kafka.bootstrap_servers, topics.contact_events, expected=count
    )
    events = [ContactEvent.model_validate_json(record.value) for record in records]
    assert sorted(event.user_id or "" for event in events) == sorted(users)
    return events


async def test_a_3000_character_user_id_gets_400_naming_it_and_later_contacts_land(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"s": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, auth=AUTH, timeout=60) as client:
            refused = await client.post("/v1/track", json={"userId": "u" * 3000, "event": "E"})
            assert refused.status_code == 400
            assert refused.json()["errors"] == [
                "userId: is 3000 characters long, over the 255 character limit"
            ]
            await _later_contacts_land(client, kafka_settings, topics, 5)


async def test_traits_holding_nul_are_refused_and_later_contacts_land(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"s": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, auth=AUTH, timeout=60) as client:
            body = {"userId": "nul-user", "traits": {"name": "a\x00b"}}
            refused = await client.post("/v1/identify", json=body)
            assert refused.status_code == 400
            assert refused.json()["errors"] == [
                "traits.name: holds U+0000 (the NUL character), which no string may hold"
            ]
            await _later_contacts_land(client, kafka_settings, topics, 5)


async def test_an_event_dated_9999_gets_received_at_and_keeps_its_original_time(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"s": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, auth=AUTH, timeout=60) as client:
            body = {"userId": "future", "event": "E", "timestamp": "9999-12-01T00:00:00Z"}
            assert (await client.post("/v1/track", json=body)).status_code == 200
    [record] = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.contact_events, expected=1
    )
    event = ContactEvent.model_validate_json(record.value)
    assert event.timestamp == event.received_at
    assert event.original_timestamp == datetime(9999, 12, 1, tzinfo=UTC)
    assert record.headers["ce_time"].startswith(event.received_at.strftime("%Y-%m-%d"))


@pytest.fixture
def held_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Large bodies' JSON parsing waits for ``release`` once it has ``started``.

    If parsing ran on the event loop, the wait would block every other request until the
    deadlock breaker below lets it go: the order of answers then shows it.
    """
    started, release = threading.Event(), threading.Event()
    decode = funnel_ingest.tracking.decode_json

    def held(data: bytes) -> Any:
        if len(data) >= 100_000:
            started.set()
            release.wait(timeout=30)  # Only a deadlock breaker: the test sets it itself.
        return decode(data)

    monkeypatch.setattr(funnel_ingest.tracking, "decode_json", held)
    yield started, release
    release.set()


async def test_healthz_and_a_small_track_are_answered_while_a_457_kb_batch_is_parsed(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    held_parsing: tuple[threading.Event, threading.Event],
) -> None:
    started, release = held_parsing
    # The batch: a large batch-level context copied into 2,500 messages.
    batch = [{"type": "track", "userId": f"u{i}", "event": "E"} for i in range(2500)]
    body = json.dumps({"batch": batch, "context": {"page": {"blob": "x" * 320_000}}})
    assert 400_000 < len(body) < 500 * 1024
    finished: list[str] = []
    with serve_ingest(kafka=kafka_settings, topics=topics, write_keys={"s": WRITE_KEY}) as url:
        async with httpx.AsyncClient(base_url=url, auth=AUTH, timeout=120) as client:

            async def large() -> httpx.Response:
                answer = await client.post("/v1/batch", content=body)
                finished.append("batch")
                return answer

            batch_task = asyncio.create_task(large())
            assert await asyncio.to_thread(started.wait, 60), "the batch was never parsed"
            health = await client.get("/healthz")
            finished.append("healthz")
            track = await client.post("/v1/track", json={"userId": "small", "event": "E"})
            finished.append("track")
            release.set()
            refused = await batch_task
    assert finished == ["healthz", "track", "batch"]
    assert (health.status_code, track.status_code) == (200, 200)
    assert refused.status_code == 413
    assert "merged into each" in refused.json()["message"]
