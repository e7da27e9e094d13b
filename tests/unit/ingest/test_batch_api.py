"""Batches, gzip and limits over HTTP, with a fake publisher in place of Kafka."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from fastapi.testclient import TestClient
from funnel_shared.events import ContactEvent, RejectedRecord
from funnel_shared.settings import TopicSettings

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY, make_app

TOPICS = TopicSettings()
AUTH = (WRITE_KEY, "")


def _batch(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"batch": list(items), **fields}


def test_a_batch_publishes_valid_messages_and_dead_letters_invalid_ones(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = _batch(
        {"type": "track", "userId": "u-1", "event": "Signed Up", "messageId": "ok-1"},
        {"type": "track", "userId": "u-2", "messageId": "bad-1"},
        {"type": "identify", "anonymousId": "a-1", "messageId": "ok-2"},
        {"type": "alias", "userId": "null", "previousId": "p", "messageId": "bad-2"},
        context={"library": {"name": "test"}},
    )
    response = client.post("/v1/batch", json=body, auth=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["success"], answer["accepted"]) == (True, 2)
    assert [(r["index"], r["messageId"]) for r in answer["rejected"]] == [
        (1, "bad-1"),
        (3, "bad-2"),
    ]
    assert any("event" in error for error in answer["rejected"][0]["errors"])

    events = [
        ContactEvent.model_validate_json(v) for _, _, v, _ in publisher.on(TOPICS.contact_events)
    ]
    assert [(e.message_id, e.contact_key) for e in events] == [("ok-1", "u-1"), ("ok-2", "a-1")]
    assert all(e.context["library"] == {"name": "test"} for e in events)
    dead = [
        (k, RejectedRecord.model_validate_json(v)) for _, k, v, _ in publisher.on(TOPICS.rejected)
    ]
    assert dead[0][0] == "u-2"
    assert dead[1][0] == dead[1][1].id  # "null" is not an id: the dead letter's own id keys it.
    first = dead[0][1]
    assert (first.service, first.origin) == ("ingest", "/v1/batch (website)")
    assert json.loads(first.original) == body["batch"][1]  # As sent, before the merge.
    assert any("event" in error for error in first.errors)


@pytest.mark.parametrize("path", ["/v1/import", "/v1/b"])
def test_import_and_the_short_batch_path_are_the_batch_route(
    client: TestClient, publisher: FakePublisher, path: str
) -> None:
    response = client.post(path, json=_batch({"type": "page", "anonymousId": "a"}), auth=AUTH)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1


def test_an_empty_batch_is_accepted_and_publishes_nothing(
    client: TestClient, publisher: FakePublisher
) -> None:
    response = client.post("/v1/batch", json=_batch(), auth=AUTH)
    assert response.json() == {"success": True, "accepted": 0, "rejected": []}
    assert publisher.sent == []


def test_batch_write_key_in_the_body_and_batch_sent_at_corrects_skew(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = _batch(
        {"type": "track", "userId": "u", "event": "E", "timestamp": "2000-01-01T00:00:00Z"},
        writeKey=WRITE_KEY,
        sentAt="2000-01-01T00:00:10Z",  # The client's clock is decades behind.
    )
    assert client.post("/v1/batch", json=body).status_code == 200
    event = ContactEvent.model_validate_json(publisher.sent[0][2])
    assert (event.received_at - event.timestamp).total_seconds() == 10


def test_a_gzip_batch_as_the_segment_sdks_send_it_is_accepted(
    client: TestClient, publisher: FakePublisher
) -> None:
    raw = json.dumps(_batch({"type": "track", "userId": "u", "event": "🎉 Zoë"})).encode()
    response = client.post(
        "/v1/batch",
        content=gzip.compress(raw),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=AUTH,
    )
    assert response.status_code == 200, response.text
    assert ContactEvent.model_validate_json(publisher.sent[0][2]).event == "🎉 Zoë"


def test_a_gzip_bomb_gets_413(client: TestClient, publisher: FakePublisher) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * 20_000_000 + b"]}")
    response = client.post(
        "/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"}, auth=AUTH
    )
    assert response.status_code == 413
    assert "decompressed" in response.json()["message"]
    assert publisher.sent == []


def test_a_body_over_500_kb_gets_413(client: TestClient) -> None:
    items = [{"type": "track", "userId": "u", "event": "x" * 1000}] * 600
    response = client.post("/v1/batch", json=_batch(*items), auth=AUTH)
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_more_than_the_message_limit_gets_413(publisher: FakePublisher) -> None:
    with TestClient(make_app(publisher, max_batch_messages=3)) as client:
        items = [{"type": "page", "anonymousId": "a"}] * 4
        response = client.post("/v1/batch", json=_batch(*items), auth=AUTH)
    assert response.status_code == 413
    assert "4 messages" in response.json()["message"]


def test_2500_messages_are_accepted_and_2501_are_not(
    client: TestClient, publisher: FakePublisher
) -> None:
    items = [{"type": "page", "anonymousId": "a"}] * 2500
    assert client.post("/v1/batch", json=_batch(*items), auth=AUTH).json()["accepted"] == 2500
    response = client.post("/v1/batch", json=_batch(*items, items[0]), auth=AUTH)
    assert response.status_code == 413


def test_a_message_over_32_kb_in_a_batch_gets_413_naming_it(
    client: TestClient, publisher: FakePublisher
) -> None:
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"x": "y" * 33_000}}
    response = client.post(
        "/v1/batch", json=_batch({"type": "page", "anonymousId": "a"}, big), auth=AUTH
    )
    assert response.status_code == 413
    assert "index 1" in response.json()["message"]
    assert publisher.sent == []


def test_a_single_message_over_32_kb_gets_413(client: TestClient) -> None:
    body = {"userId": "u", "event": "E", "properties": {"x": "y" * 33_000}}
    assert client.post("/v1/track", json=body, auth=AUTH).status_code == 413


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[1, 2]", "invalid_batch"),
        (b'{"batch": "nope"}', "invalid_batch"),
        (b"\xff\xfe", "invalid_utf8"),
        (b'{"batch": [', "malformed_json"),
    ],
)
def test_a_batch_that_is_not_a_batch_gets_400(client: TestClient, body: bytes, code: str) -> None:
    response = client.post("/v1/batch", content=body, auth=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_form_posts_get_415(client: TestClient) -> None:
    response = client.post(
        "/v1/track",
        content=b"userId=u&event=E",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=AUTH,
    )
    assert response.status_code == 415


def test_a_wrong_basic_key_is_refused_before_the_body_is_read(client: TestClient) -> None:
    response = client.post("/v1/batch", content=b"{not even json", auth=("wrong", ""))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_if_any_record_is_not_acknowledged_the_whole_batch_gets_503(
    client: TestClient, publisher: FakePublisher
) -> None:
    publisher.fail_with = KafkaTimeoutError()
    publisher.fail_topic = TOPICS.rejected
    body = _batch({"type": "page", "anonymousId": "a"}, {"type": "track", "userId": "u"})
    response = client.post("/v1/batch", json=body, auth=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


def test_a_broker_that_never_answers_gets_503_after_the_produce_timeout(
    publisher: FakePublisher,
) -> None:
    publisher.hold = asyncio.Event()  # Never set: the ack never comes.
    with TestClient(make_app(publisher, produce_timeout_s=0.2)) as client:
        response = client.post(
            "/v1/batch", json=_batch({"type": "page", "anonymousId": "a"}), auth=AUTH
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert publisher.sent == []


def test_a_batch_item_with_a_lone_surrogate_is_dead_lettered_escaped(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = b'{"batch": [{"type": "page", "anonymousId": "a", "messageId": "m\\ud800"}]}'
    response = client.post("/v1/batch", content=body, auth=AUTH)
    assert response.status_code == 200
    [rejected] = response.json()["rejected"]
    assert rejected["messageId"] is None  # Not text: it cannot be echoed in a UTF-8 answer.
    assert "surrogate" in rejected["errors"][0]
    [(_, _, value, _)] = publisher.on(TOPICS.rejected)
    assert "m\\ud800" in RejectedRecord.model_validate_json(value).original


@pytest.mark.parametrize("depth", [100, 900, 5000])
def test_deeply_nested_json_gets_400_not_a_crash(client: TestClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    body = (
        b'{"batch": [{"type": "page", "anonymousId": "a", "properties": {"x": ' + nested + b"}}]}"
    )
    response = client.post("/v1/batch", content=body, auth=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] in ("too_deep", "malformed_json")
