"""Per-message validation, enrichment, batch merging, write keys and client addresses."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from funnel_ingest.auth import write_key_from
from funnel_ingest.batch import deep_merge, unpack_batch
from funnel_ingest.errors import IngestError
from funnel_ingest.proxies import client_ip
from funnel_ingest.sdk_settings import sdk_settings
from funnel_ingest.validation import Enrichment, Invalid, Valid, check_message, original_text
from funnel_shared.events import ContactEvent

RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ENRICH = Enrichment(received_at=RECEIVED, source="web", client_ip="203.0.113.9")


def _check(raw: Any, **kwargs: Any) -> Valid | Invalid:
    return check_message(
        raw, max_bytes=kwargs.pop("max_bytes", 32 * 1024), enrichment=ENRICH, **kwargs
    )


def _valid(raw: Any, **kwargs: Any) -> ContactEvent:
    outcome = _check(raw, **kwargs)
    assert isinstance(outcome, Valid), outcome
    return outcome.event


def _invalid(raw: Any, **kwargs: Any) -> Invalid:
    outcome = _check(raw, **kwargs)
    assert isinstance(outcome, Invalid), outcome
    return outcome


def test_a_valid_message_is_enriched_with_source_ip_received_at_and_a_message_id() -> None:
    event = _valid({"type": "track", "userId": "u", "event": "E"})
    assert (event.source, event.received_at, event.context["ip"]) == (
        "web",
        RECEIVED,
        "203.0.113.9",
    )
    assert event.message_id and event.timestamp == RECEIVED


def test_the_route_type_wins_over_the_body_type() -> None:
    assert _valid({"type": "track", "userId": "u"}, message_type="identify").type == "identify"


def test_null_objects_count_as_absent() -> None:
    event = _valid({"type": "track", "userId": "u", "event": "E", "context": None, "traits": None})
    assert event.traits == {} and event.context == {"ip": "203.0.113.9"}


def test_the_write_key_is_not_forwarded() -> None:
    event = _valid({"type": "identify", "userId": "u", "writeKey": "secret"})
    assert "writeKey" not in event.model_dump_json()


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        ("a string", "not_an_object", "JSON object"),
        ({"userId": "u", "event": "E"}, "unknown_type", "type"),
        ({"type": "nope", "userId": "u"}, "unknown_type", "type"),
        ({"type": "track", "userId": "u"}, "missing_field", "event"),
        ({"type": "group", "userId": "u"}, "missing_field", "groupId"),
        ({"type": "alias", "userId": "u"}, "missing_field", "previousId"),
        ({"type": "alias", "userId": "null", "previousId": "p"}, "missing_identity", "userId"),
        (
            {"type": "alias", "userId": "u", "previousId": "undefined"},
            "missing_identity",
            "previousId",
        ),
        ({"type": "identify"}, "missing_identity", "userId or anonymousId"),
        ({"type": "identify", "userId": "0", "anonymousId": "-1"}, "missing_identity", "userId"),
        ({"type": "track", "userId": "u", "event": 5}, "invalid_field", "event"),
        ({"type": "track", "userId": ["u"], "event": "E"}, "invalid_field", "userId"),
        (
            {"type": "track", "userId": "u", "event": "E", "properties": []},
            "invalid_field",
            "properties",
        ),
        (
            {"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"},
            "invalid_field",
            "timestamp",
        ),
        (
            {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-01-01T00:00:00"},
            "invalid_field",
            "timestamp",
        ),
        ({"type": "identify", "userId": "u", "event": 5}, "invalid_field", "event"),
        ({"type": "track", "userId": "u", "event": "E", "groupId": []}, "invalid_field", "groupId"),
        (
            {"type": "track", "userId": "u", "event": "E", "lone": "\ud800"},
            "invalid_unicode",
            "surrogate",
        ),
    ],
)
def test_invalid_messages_are_explained(raw: Any, reason: str, mentions: str) -> None:
    outcome = _invalid(raw)
    assert outcome.reason == reason
    assert any(mentions in error for error in outcome.errors), outcome.errors


def test_a_message_over_the_size_limit_is_too_large() -> None:
    outcome = _invalid({"type": "track", "userId": "u", "event": "x" * 2000}, max_bytes=1000)
    assert outcome.reason == "too_large"


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    message = {"type": "track", "userId": "u", "event": "🎉" * 250}  # 1040 bytes, 290 characters.
    assert _invalid(message, max_bytes=1000).reason == "too_large"


def test_numeric_ids_become_strings_as_in_segment() -> None:
    event = _valid({"type": "group", "userId": 42, "anonymousId": 1.0, "groupId": 7})
    assert (event.user_id, event.anonymous_id, event.group_id) == ("42", "1", "7")
    assert event.contact_key == "42"


def test_a_blocked_user_id_is_dropped_and_the_anonymous_id_keys_the_record() -> None:
    event = _valid({"type": "track", "userId": "anonymous", "anonymousId": "a-1", "event": "E"})
    assert (event.user_id, event.contact_key) == (None, "a-1")


def test_sender_fields_named_like_enrichment_fields_cannot_override_them() -> None:
    event = _valid(
        {"type": "track", "userId": "u", "event": "E", "receivedAt": "garbage", "source": 5}
    )
    assert (event.received_at, event.source) == (RECEIVED, "web")


def test_unicode_survives_enrichment() -> None:
    event = _valid({"type": "track", "userId": "zoë-🎉", "event": "a-b", "properties": {"é": "✓"}})
    again = ContactEvent.model_validate_json(event.model_dump_json())
    assert (again.user_id, again.event, again.properties) == ("zoë-🎉", "a-b", {"é": "✓"})


def test_skew_is_corrected_with_a_client_clock_an_hour_behind() -> None:
    client_now = RECEIVED - timedelta(hours=1)
    event = _valid(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": (client_now - timedelta(seconds=30)).isoformat(),
            "sentAt": client_now.isoformat(),
        }
    )
    assert event.timestamp == RECEIVED - timedelta(seconds=30)


def test_a_skew_correction_out_of_the_calendar_is_an_invalid_message_not_a_crash() -> None:
    outcome = _invalid(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": "0001-01-01T00:00:00Z",
            "sentAt": "9999-12-31T00:00:00Z",
        }
    )
    assert outcome.errors == ["timestamp: out of range after clock skew correction"]


def test_original_text_keeps_unicode_and_escapes_only_what_utf8_cannot_carry() -> None:
    assert original_text({"a": "🎉"}) == '{"a": "🎉"}'
    assert original_text({"a": "\ud800"}) == '{"a": "\\ud800"}'


def test_batch_context_and_integrations_merge_into_items_whose_own_values_win() -> None:
    body: dict[str, Any] = {
        "batch": [
            {"type": "track", "context": {"page": {"url": "/a"}, "locale": "fr"}},
            {"type": "identify", "integrations": {"All": True}},
            "not an object",
        ],
        "context": {"library": {"name": "lib"}, "locale": "en", "page": {"title": "T"}},
        "integrations": {"All": False, "Mixpanel": True},
        "sentAt": "2026-01-01T00:00:00Z",
    }
    first, second, third = unpack_batch(body, max_messages=10)
    assert first["context"] == {
        "library": {"name": "lib"},
        "locale": "fr",
        "page": {"title": "T", "url": "/a"},
    }
    assert first["integrations"] == {"All": False, "Mixpanel": True}
    assert second["integrations"] == {"All": True, "Mixpanel": True}
    assert first["sentAt"] == second["sentAt"] == "2026-01-01T00:00:00Z"
    assert third == "not an object"
    assert "context" not in body["batch"][1]  # The originals stay as sent, for dead letters.


def test_an_item_with_its_own_sent_at_keeps_it() -> None:
    body = {"batch": [{"type": "track", "sentAt": "mine"}], "sentAt": "batch"}
    assert unpack_batch(body, max_messages=1)[0]["sentAt"] == "mine"


@pytest.mark.parametrize(
    ("body", "status"),
    [([], 400), ({}, 400), ({"batch": {"a": 1}}, 400), ({"batch": [{}] * 3}, 413)],
)
def test_batch_shape_and_count_are_checked(body: Any, status: int) -> None:
    with pytest.raises(IngestError) as caught:
        unpack_batch(body, max_messages=2)
    assert caught.value.status == status


def test_deep_merge_replaces_non_objects() -> None:
    assert deep_merge({"a": {"b": 1}, "c": 1}, {"a": 2}) == {"a": 2, "c": 1}


def _basic(userinfo: str) -> str:
    return "Basic " + base64.b64encode(userinfo.encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "body", "key"),
    [
        (_basic("wk:"), None, "wk"),
        (_basic("wk:ignored"), {"writeKey": "other"}, "wk"),
        (None, {"writeKey": "wk"}, "wk"),
        ("Basic !!!notbase64", {"writeKey": "wk"}, None),
        (_basic(":"), None, None),
        (None, {"writeKey": 5}, None),
        (None, ["not", "an", "object"], None),
        ("Bearer token", {"writeKey": "wk"}, "wk"),
    ],
)
def test_the_write_key_comes_from_basic_auth_else_the_body(
    authorization: str | None, body: Any, key: str | None
) -> None:
    assert write_key_from(authorization, body) == key


PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.1", ["1.2.3.4"], "198.51.100.1"),  # Untrusted peer: its header is ignored.
        ("10.0.0.5", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.5", ["6.6.6.6, 1.2.3.4, 10.0.0.7"], "1.2.3.4"),  # Right-most untrusted.
        ("10.0.0.5", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # Several headers read as one list.
        ("10.0.0.5", ["10.0.0.9"], "10.0.0.9"),  # All trusted: the furthest one known.
        ("10.0.0.5", ["garbage, 10.0.0.9"], "10.0.0.9"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("::1", ["2001:db8::1"], "2001:db8::1"),
        (None, ["1.2.3.4"], None),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str | None, forwarded: list[str], expected: str | None
) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip("127.0.0.1", ["1.2.3.4"], []) == "127.0.0.1"


def test_sdk_settings_point_the_segment_integration_at_ingest() -> None:
    document = sdk_settings(write_key="wk", public_url="https://track.example.com/")
    segment = document["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (
        "wk",
        "track.example.com/v1",
        "https",
    )
    local = sdk_settings(write_key="wk", public_url="http://127.0.0.1:8000/")
    assert local["integrations"]["Segment.io"]["apiHost"] == "127.0.0.1:8000/v1"
    assert local["integrations"]["Segment.io"]["protocol"] == "http"
