"""Property-based: whatever is posted, ingest never answers 500, and every record it
publishes is a valid ContactEvent keyed by its contact (or a valid dead letter)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC
from typing import Any

from fastapi.testclient import TestClient
from funnel_ingest.api_models import Accepted, BatchAccepted
from funnel_ingest.errors import ErrorBody
from funnel_shared.events import BLOCKED_IDS, ContactEvent, RejectedRecord
from funnel_shared.settings import TopicSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY, make_app

TOPICS = TopicSettings()
TYPES = ["track", "identify", "page", "screen", "group", "alias"]
ROUTES = [f"/v1/{name}" for name in TYPES] + ["/v1/t", "/v1/batch", "/v1/import"]

plain = st.text(max_size=12)
texts = st.one_of(
    plain,
    plain,
    plain,
    st.sampled_from(["\ud800", "a\x00b", "🎉", "zoë", "\u202e", "\ufeff", " "]),
    st.sampled_from([*sorted(BLOCKED_IDS), " NULL ", "Undefined"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
stamps = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # Naive: not allowed.
    json_values,
)
ids = st.one_of(texts, st.integers(), st.floats(allow_nan=False, allow_infinity=False), json_values)
wild_messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*TYPES, "bogus"]) | json_values,
        "userId": ids,
        "anonymousId": ids,
        "previousId": ids,
        "groupId": ids,
        "messageId": texts | json_values,
        "event": texts | json_values,
        "name": texts | json_values,
        "timestamp": stamps,
        "sentAt": stamps,
        "originalTimestamp": stamps,
        "receivedAt": stamps,
        "source": json_values,
        "context": st.dictionaries(texts, json_values, max_size=3) | json_values,
        "integrations": st.dictionaries(texts, json_values, max_size=2) | json_values,
        "properties": st.dictionaries(texts, json_values, max_size=3) | json_values,
        "traits": st.dictionaries(texts, json_values, max_size=3) | json_values,
        "writeKey": texts,
    },
)
good_ids = st.text(min_size=1, max_size=12) | st.integers()
objects = st.dictionaries(texts, json_values, max_size=3)
REQUIRED = {"track": ["event"], "group": ["groupId"], "alias": ["previousId"]}


def _plausible(message_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Messages that are mostly right, so that the accepting paths get exercised too."""
    required: dict[str, st.SearchStrategy[Any]] = {
        "type": st.just(message_type),
        "userId": good_ids,
    }
    for name in REQUIRED.get(message_type, []):
        required[name] = st.text(min_size=1, max_size=12)
    return st.fixed_dictionaries(
        required,
        optional={
            "anonymousId": good_ids,
            "messageId": st.text(max_size=12) | st.sampled_from(["m\ud800", "🎉", "\x00"]),
            "timestamp": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
            "sentAt": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
            "context": objects,
            "properties": objects,
            "traits": objects,
            "channel": json_values,
        },
    )


def _corrupt(pair: tuple[dict[str, Any], tuple[str, Any] | None]) -> dict[str, Any]:
    message, change = pair
    return message if change is None else {**message, change[0]: change[1]}


CORRUPTIBLE = ["type", "userId", "anonymousId", "previousId", "groupId", "event", "name"]
CORRUPTIBLE += ["messageId", "timestamp", "receivedAt", "source", "context", "properties"]
# One message in three gets one field replaced by anything at all.
corruptions = st.one_of(
    st.none(), st.none(), st.tuples(st.sampled_from(CORRUPTIBLE), json_values | texts)
)
plausible_messages = st.tuples(st.sampled_from(TYPES).flatmap(_plausible), corruptions).map(
    _corrupt
)
messages = plausible_messages | wild_messages
batches = st.fixed_dictionaries(
    {"batch": st.lists(messages | json_values, max_size=5)},
    optional={"context": json_values, "integrations": json_values, "sentAt": stamps},
)


def _encode(body: Any, ascii_only: bool) -> bytes:
    # Lone surrogates sent raw are not UTF-8: that must be a 400, not a crash.
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _check_published(publisher: FakePublisher) -> tuple[int, int]:
    for _, key, value, headers in publisher.on(TOPICS.contact_events):
        event = ContactEvent.model_validate_json(value)
        assert key == event.contact_key
        assert key.strip().lower() not in BLOCKED_IDS
        assert headers["ce_id"] == event.message_id
        assert headers["ce_type"] == f"segment.{event.type}"
        assert event.source == "website"
    for _, _, value, _ in publisher.on(TOPICS.rejected):
        assert RejectedRecord.model_validate_json(value).errors
    return len(publisher.on(TOPICS.contact_events)), len(publisher.on(TOPICS.rejected))


def test_any_body_gets_a_documented_answer_and_only_valid_records_are_published() -> None:
    publisher = FakePublisher()
    with TestClient(make_app(publisher)) as client:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            route=st.sampled_from(ROUTES),
            single=messages,
            batch=batches,
            raw=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=64)),
            ascii_only=st.booleans(),
            gzipped=st.booleans(),
            content_type=st.sampled_from(["application/json", "text/plain", None]),
            follow_type=st.booleans(),
        )
        def post(
            route: str,
            single: dict[str, Any],
            batch: dict[str, Any],
            raw: bytes | None,
            ascii_only: bool,
            gzipped: bool,
            content_type: str | None,
            follow_type: bool,
        ) -> None:
            publisher.sent.clear()
            if (
                follow_type
                and route not in ("/v1/batch", "/v1/import")
                and single.get("type") in TYPES
            ):
                route = f"/v1/{single['type']}"  # Else the route's type mostly misses its fields.
            is_batch = route in ("/v1/batch", "/v1/import")
            data = raw if raw is not None else _encode(batch if is_batch else single, ascii_only)
            headers = {"Content-Type": content_type} if content_type else {}
            if gzipped:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
            response = client.post(route, content=data, headers=headers, auth=(WRITE_KEY, ""))

            assert response.status_code in (200, 400, 413), response.text
            published, dead = _check_published(publisher)
            if response.status_code != 200:
                ErrorBody.model_validate(response.json())
                assert publisher.sent == []
            elif is_batch:
                answer = BatchAccepted.model_validate(response.json())
                assert (answer.accepted, len(answer.rejected)) == (published, dead)
            else:
                Accepted.model_validate(response.json())
                assert (published, dead) == (1, 0)

        post()
