"""Browsers (CORS, analytics.js paths and settings), rate limits, metrics and the OpenAPI
document, over HTTP with a fake publisher."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from funnel_ingest.api_models import Accepted, BatchAccepted
from funnel_ingest.errors import ErrorBody
from funnel_shared.events import ContactEvent

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY, make_app

AUTH = (WRITE_KEY, "")
ORIGIN = "https://shop.example.com"


@pytest.mark.parametrize(
    ("path", "message_type"),
    [
        ("t", "track"),
        ("i", "identify"),
        ("p", "page"),
        ("s", "screen"),
        ("g", "group"),
        ("a", "alias"),
    ],
)
def test_analytics_js_short_paths_take_text_plain_with_the_write_key_in_the_body(
    client: TestClient, publisher: FakePublisher, path: str, message_type: str
) -> None:
    body = {
        "type": message_type,
        "userId": "u",
        "event": "E",
        "groupId": "g",
        "previousId": "p",
        "writeKey": WRITE_KEY,
        "_metadata": {"bundled": ["Segment.io"]},
    }
    response = client.post(
        f"/v1/{path}",
        content=json.dumps(body),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert ContactEvent.model_validate_json(publisher.sent[0][2]).type == message_type


def test_a_preflight_for_basic_auth_and_json_is_allowed(client: TestClient) -> None:
    response = client.options(
        "/v1/batch",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_error_answers_carry_cors_headers_so_the_page_can_read_them(client: TestClient) -> None:
    response = client.post("/v1/track", content=b"{}", headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"


def test_configured_origins_are_the_only_ones_allowed(publisher: FakePublisher) -> None:
    with TestClient(make_app(publisher, cors_origins="https://a.example, https://b.example")) as c:
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = c.options("/v1/track", headers={"Origin": "https://b.example", **preflight})
        refused = c.options("/v1/track", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://b.example"
    assert refused.status_code == 400


def test_the_settings_document_points_analytics_js_back_at_this_host(client: TestClient) -> None:
    response = client.get(f"/v1/projects/{WRITE_KEY}/settings")
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (
        WRITE_KEY,
        "testserver/v1",
        "http",
    )
    assert client.get("/v1/projects/unknown/settings").status_code == 404


def test_the_settings_document_uses_the_public_url_when_configured(
    publisher: FakePublisher,
) -> None:
    with TestClient(make_app(publisher, public_url="https://track.example.com")) as client:
        segment = client.get(f"/v1/projects/{WRITE_KEY}/settings").json()["integrations"][
            "Segment.io"
        ]
    assert (segment["apiHost"], segment["protocol"]) == ("track.example.com/v1", "https")


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        make_app(FakePublisher(), trusted_proxies="not-an-address")


def test_forwarded_for_from_a_trusted_proxy_sets_context_ip(publisher: FakePublisher) -> None:
    headers = {"X-Forwarded-For": "198.51.100.7"}
    # TestClient's peer is the literal "testclient"; an untrusted peer's header is ignored.
    with TestClient(make_app(publisher, trusted_proxies="10.0.0.0/8")) as client:
        client.post("/v1/page", json={"anonymousId": "a"}, headers=headers, auth=AUTH)
    assert ContactEvent.model_validate_json(publisher.sent[0][2]).context["ip"] == "testclient"
    with TestClient(make_app(publisher, trusted_proxies="10.0.0.0/8"), client=("10.1.2.3", 5)) as c:
        c.post("/v1/page", json={"anonymousId": "a"}, headers=headers, auth=AUTH)
    assert ContactEvent.model_validate_json(publisher.sent[1][2]).context["ip"] == "198.51.100.7"


def test_the_rate_limit_answers_429_with_retry_after_per_write_key(
    publisher: FakePublisher,
) -> None:
    app = make_app(publisher, rate_limit="2/minute")
    with TestClient(app) as client:
        answers = [client.post("/v1/page", json={"anonymousId": "a"}, auth=AUTH) for _ in range(3)]
        other = client.post("/v1/page", json={"anonymousId": "a"}, auth=("wrong", ""))
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert answers[2].json()["code"] == "rate_limited"
    assert other.status_code == 401
    assert len(publisher.sent) == 2


def test_a_bad_rate_limit_fails_at_start_up() -> None:
    with pytest.raises(ValueError):
        make_app(FakePublisher(), rate_limit="lots")


def test_metrics_count_requests_messages_and_produce_latency(client: TestClient) -> None:
    client.post("/v1/track", json={"userId": "u", "event": "E"}, auth=AUTH)
    client.post("/v1/track", json={"userId": "u"}, auth=AUTH)
    client.post(
        "/v1/batch",
        json={"batch": [{"type": "page", "anonymousId": "a"}, {"type": "page"}]},
        auth=AUTH,
    )
    text = client.get("/metrics").text
    assert 'ingest_requests_total{method="POST",route="/v1/track",status="200"} 1.0' in text
    assert 'ingest_requests_total{method="POST",route="/v1/track",status="400"} 1.0' in text
    assert 'ingest_messages_accepted_total{type="track"} 1.0' in text
    assert 'ingest_messages_accepted_total{type="page"} 1.0' in text
    assert 'ingest_messages_rejected_total{reason="missing_field"} 1.0' in text
    assert 'ingest_messages_rejected_total{reason="missing_identity"} 1.0' in text
    assert 'ingest_produce_latency_seconds_count{outcome="acked"} 2.0' in text


def test_the_openapi_document_describes_bodies_answers_and_every_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path in [
        "track",
        "identify",
        "page",
        "screen",
        "group",
        "alias",
        "batch",
        "import",
        "t",
        "b",
    ]:
        operation = paths[f"/v1/{path}"]["post"]
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/json", "text/plain"}
        assert (
            content["text/plain"]["schema"]["$ref"].rsplit("/", 1)[1]
            in document["components"]["schemas"]
        )
        assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
    assert paths["/v1/track"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TrackMessage"
    }
    assert {"/healthz", "/readyz", "/metrics", "/v1/projects/{write_key}/settings"} <= set(paths)


def test_answers_match_their_documented_models(client: TestClient) -> None:
    single = client.post("/v1/track", json={"userId": "u", "event": "E"}, auth=AUTH)
    Accepted.model_validate(single.json())
    batch = client.post("/v1/batch", json={"batch": [{"type": "page"}]}, auth=AUTH)
    BatchAccepted.model_validate(batch.json())
    for refused in (
        client.post("/v1/track", json={"userId": "u"}, auth=AUTH),
        client.post("/v1/track", content=b"{", auth=AUTH),
        client.post("/v1/track", json={}, auth=("nope", "")),
    ):
        assert ErrorBody.model_validate(refused.json()).success is False
