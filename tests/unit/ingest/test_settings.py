"""Ingest settings as people write them in the environment."""

from __future__ import annotations

import ipaddress
import os

import pytest
from funnel_ingest.settings import IngestSettings


def test_lists_come_comma_separated_or_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("INGEST_TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.1"]')
    settings = IngestSettings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
    ]


def test_defaults_are_segment_limits_open_cors_and_no_proxies_or_rate_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("INGEST_"):
            monkeypatch.delenv(name)
    settings = IngestSettings()
    assert (settings.max_message_bytes, settings.max_request_bytes) == (32 * 1024, 500 * 1024)
    assert settings.max_batch_messages == 2500
    assert (settings.cors_origins, settings.trusted_proxies) == (["*"], [])
    assert (settings.rate_limit, settings.public_url) == (None, None)


@pytest.mark.parametrize("rate", ["100/second", "5000 per minute", "10/hour"])
def test_rate_limits_read_like_english(monkeypatch: pytest.MonkeyPatch, rate: str) -> None:
    monkeypatch.setenv("INGEST_RATE_LIMIT", rate)
    assert IngestSettings().rate_limit == rate


def test_an_empty_rate_limit_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RATE_LIMIT", "")
    assert IngestSettings().rate_limit is None


def test_a_write_key_is_found_only_when_it_matches_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WRITE_KEYS", '{"web": "wk-1", "app": "wk-2"}')
    settings = IngestSettings()
    assert [settings.source_for_key(key) for key in ("wk-1", "wk-2", "wk-", "wk-10", "")] == [
        "web",
        "app",
        None,
        None,
        None,
    ]
