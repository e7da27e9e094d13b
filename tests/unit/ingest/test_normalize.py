from datetime import UTC, datetime, timedelta
from typing import Any

from funnel_ingest.normalize import normalize
from funnel_shared.events import SegmentMessage
from pydantic import TypeAdapter

messages: TypeAdapter[Any] = TypeAdapter(SegmentMessage)
RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def _normalize(body: dict[str, Any], **kwargs: Any) -> Any:
    defaults: dict[str, Any] = {"received_at": RECEIVED, "source": "web", "client_ip": "10.1.2.3"}
    return normalize(messages.validate_python(body), **{**defaults, **kwargs})


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The client clock runs 1 hour fast; the event happened 5 s before it was sent.
    client_now = RECEIVED + timedelta(hours=1)
    event = _normalize(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": (client_now - timedelta(seconds=5)).isoformat(),
            "sentAt": client_now.isoformat(),
        }
    )
    assert event.timestamp == RECEIVED - timedelta(seconds=5)
    assert event.original_timestamp == client_now - timedelta(seconds=5)


def test_client_timestamp_is_trusted_without_sent_at() -> None:
    stamp = RECEIVED - timedelta(days=2)
    event = _normalize({"type": "track", "userId": "u", "event": "E", "timestamp": stamp})
    assert event.timestamp == stamp


def test_missing_timestamp_becomes_received_at() -> None:
    assert _normalize({"type": "identify", "userId": "u"}).timestamp == RECEIVED


def test_missing_message_id_is_assigned_and_given_one_is_kept() -> None:
    body = {"type": "track", "userId": "u", "event": "E"}
    assigned = _normalize(body, new_message_id=lambda: "x")
    kept = _normalize({"type": "track", "userId": "u", "event": "E", "messageId": "mine"})
    assert (assigned.message_id, kept.message_id) == ("x", "mine")


def test_enrichment_sets_source_received_at_and_request_ip() -> None:
    event = _normalize({"type": "track", "userId": "u", "event": "E"})
    assert (event.source, event.received_at, event.context["ip"]) == ("web", RECEIVED, "10.1.2.3")


def test_type_specific_fields_survive_normalization() -> None:
    event = _normalize(
        {"type": "track", "userId": "u", "event": "Order Completed", "properties": {"total": 9}}
    )
    assert (event.type, event.event, event.properties) == ("track", "Order Completed", {"total": 9})
