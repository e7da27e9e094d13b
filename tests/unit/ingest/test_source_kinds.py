"""Every write key has a kind, browser (public) or server (secret); ingest stamps it on events."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from funnel_ingest.settings import IngestSettings
from pydantic import SecretStr, ValidationError

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY, make_app

SERVER_KEY = "sk-test-server"


def _client(publisher: FakePublisher) -> TestClient:
    keys = {"website": WRITE_KEY, "shop": {"key": SERVER_KEY, "kind": "server"}}
    return TestClient(make_app(publisher, write_keys=keys))


def _sent(publisher: FakePublisher) -> list[dict[str, object]]:
    return [json.loads(value) for _topic, _key, value, _headers in publisher.sent]


def test_ingest_stamps_the_source_and_its_kind_and_ignores_what_the_sender_claims() -> None:
    publisher = FakePublisher()
    with _client(publisher) as client:
        claims = {"source": "shop", "sourceKind": "server"}
        body = {"userId": "u-1", "event": "Order Completed", **claims}
        assert client.post("/v1/track", json=body, auth=(WRITE_KEY, "")).status_code == 200
        assert client.post("/v1/track", json=body, auth=(SERVER_KEY, "")).status_code == 200
    [from_browser, from_server] = _sent(publisher)
    assert (from_browser["source"], from_browser["sourceKind"]) == ("website", "browser")
    assert (from_server["source"], from_server["sourceKind"]) == ("shop", "server")


def test_a_key_given_as_a_plain_string_is_a_browser_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INGEST_WRITE_KEYS",
        json.dumps({"web": "wk-1", "crm": {"key": "sk-1", "kind": "server"}, "app": {"key": "k"}}),
    )
    settings = IngestSettings()
    assert {name: key.kind for name, key in settings.write_keys.items()} == {
        "web": "browser",
        "crm": "server",
        "app": "browser",
    }
    assert settings.source_for_key("sk-1") == "crm"
    assert settings.source_kind("crm") == "server" and settings.source_kind("web") == "browser"
    # Settings built in code keep working with SecretStr values.
    assert IngestSettings(write_keys={"w": SecretStr("x")}).source_kind("w") == "browser"


@pytest.mark.parametrize(
    "keys", [{"crm": {"key": "sk-secret-1", "kind": "admin"}}, {"crm": {"kind": "server"}}]
)
def test_a_bad_key_entry_is_refused_without_echoing_keys(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, object]
) -> None:
    monkeypatch.setenv("INGEST_WRITE_KEYS", json.dumps(keys))
    with pytest.raises(ValidationError) as refused:
        IngestSettings()
    assert "write_keys.crm" in str(refused.value)
    assert "sk-secret-1" not in str(refused.value)
