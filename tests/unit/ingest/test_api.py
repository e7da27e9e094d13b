"""The ingest HTTP contract, with a fake publisher in place of Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi.testclient import TestClient
from funnel_shared.events import ContactEvent

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY


def _track(**fields: Any) -> dict[str, Any]:
    return {"userId": "user-1", "event": "Signed Up", **fields}


def test_track_with_basic_auth_write_key_is_published_then_acknowledged(
    client: TestClient, publisher: FakePublisher
) -> None:
    response = client.post("/v1/track", json=_track(messageId="m-1"), auth=(WRITE_KEY, ""))
    assert response.status_code == 200
    assert response.json() == {"success": True, "messageId": "m-1"}
    [(topic, key, value, headers)] = publisher.sent
    assert (topic, key) == ("funnel.contact-events.v1", "user-1")
    event = ContactEvent.model_validate_json(value)
    assert (event.source, event.event, event.message_id) == ("website", "Signed Up", "m-1")
    assert headers["ce_id"] == "m-1"
    assert headers["ce_type"] == "segment.track"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"


def test_write_key_in_the_body_is_accepted_and_not_forwarded(
    client: TestClient, publisher: FakePublisher
) -> None:
    response = client.post("/v1/track", json=_track(writeKey=WRITE_KEY))
    assert response.status_code == 200
    assert "writeKey" not in json.loads(publisher.sent[0][2])


@pytest.mark.parametrize("auth", [None, ("wrong", ""), ("", "")])
def test_missing_or_unknown_write_key_gets_401(
    client: TestClient, publisher: FakePublisher, auth: tuple[str, str] | None
) -> None:
    response = client.post("/v1/track", json=_track(), auth=auth)
    assert response.status_code == 401
    assert publisher.sent == []


def test_text_plain_body_holding_json_is_accepted(client: TestClient) -> None:
    # Browsers send text/plain to skip the CORS preflight.
    response = client.post(
        "/v1/track",
        content=json.dumps(_track()),
        headers={"Content-Type": "text/plain"},
        auth=(WRITE_KEY, ""),
    )
    assert response.status_code == 200


def test_malformed_json_gets_400(client: TestClient) -> None:
    response = client.post("/v1/track", content=b"{not json", auth=(WRITE_KEY, ""))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert "malformed JSON" in response.json()["message"]


def test_invalid_message_gets_400_with_the_errors(
    client: TestClient, publisher: FakePublisher
) -> None:
    response = client.post("/v1/track", json={"userId": "u"}, auth=(WRITE_KEY, ""))
    assert response.status_code == 400
    assert any("event" in error for error in response.json()["errors"])
    assert publisher.sent == []


def test_broker_failure_gets_503_with_retry_after_never_200(
    client: TestClient, publisher: FakePublisher
) -> None:
    publisher.fail_with = KafkaConnectionError("broker down")
    response = client.post("/v1/track", json=_track(), auth=(WRITE_KEY, ""))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/identify", {"userId": "u", "traits": {"email": "a@example.com"}}),
        ("/v1/page", {"anonymousId": "a", "name": "Pricing"}),
        ("/v1/screen", {"anonymousId": "a", "name": "Home"}),
        ("/v1/group", {"userId": "u", "groupId": "g"}),
        ("/v1/alias", {"userId": "u", "previousId": "a"}),
    ],
)
def test_every_single_message_route_publishes_its_type(
    client: TestClient, publisher: FakePublisher, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    assert ContactEvent.model_validate_json(publisher.sent[0][2]).type == path.rsplit("/", 1)[1]


def test_health_endpoints_answer(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("key", ["\ud800", "wk-tést", "wk-test\u0000"])
def test_odd_write_keys_in_the_body_are_just_unknown(client: TestClient, key: str) -> None:
    body = json.dumps({"userId": "u", "event": "E", "writeKey": key})
    assert client.post("/v1/track", content=body).status_code == 401


def test_emoji_travels_unchanged_nul_and_lone_surrogates_get_400(
    client: TestClient, publisher: FakePublisher
) -> None:
    good = json.dumps({"userId": "zoë 🎉", "event": "ab", "properties": {"🎉": "✓"}})
    response = client.post("/v1/track", content=good.encode(), auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    [(_, key, value, _)] = publisher.sent
    event = ContactEvent.model_validate_json(value)
    assert (key, event.event, event.properties) == ("zoë 🎉", "ab", {"🎉": "✓"})
    nul = json.dumps({"userId": "zoë 🎉", "event": "a\u0000b"})
    refused_nul = client.post("/v1/track", content=nul.encode(), auth=(WRITE_KEY, ""))
    assert refused_nul.status_code == 400
    assert refused_nul.json()["errors"] == [
        "event: holds U+0000 (the NUL character), which no string may hold"
    ]

    lone = '{"userId": "u", "event": "\\ud83d"}'  # Half an emoji, escaped: valid JSON, bad text.
    refused = client.post("/v1/track", content=lone, auth=(WRITE_KEY, ""))
    assert refused.status_code == 400
    assert "surrogate" in refused.json()["message"]
    raw = b'{"userId": "u", "event": "\xed\xa0\xbd"}'  # The same, encoded raw: not UTF-8.
    assert client.post("/v1/track", content=raw, auth=(WRITE_KEY, "")).json()["code"] == (
        "invalid_utf8"
    )
    assert len(publisher.sent) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"userId": {"id": "u"}, "event": "E"},
        {"userId": True, "event": "E"},
        {"userId": "u", "event": ["E"]},
        {"userId": "u", "event": "E", "context": "web"},
        {"userId": "u", "event": "E", "messageId": 12},
        {"anonymousId": "", "event": "E"},
        {"event": "E"},
    ],
)
def test_wrong_field_types_and_missing_ids_get_400(
    client: TestClient, publisher: FakePublisher, body: dict[str, Any]
) -> None:
    response = client.post("/v1/track", json=body, auth=(WRITE_KEY, ""))
    assert response.status_code == 400, response.text
    assert response.json()["errors"]
    assert publisher.sent == []


def test_a_non_basic_authorization_header_leaves_the_body_key_in_charge(
    client: TestClient,
) -> None:
    body = _track(writeKey=WRITE_KEY)
    response = client.post("/v1/track", json=body, headers={"Authorization": "Bearer x"})
    assert response.status_code == 200
