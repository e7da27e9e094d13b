"""Hostile values at the edge (issue 15): ids, U+0000, future times, merged batch sizes and
metric labels. Over HTTP with the shared fake publisher; the pure parts directly."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from funnel_ingest.batch import deep_merge, unpack_batch
from funnel_ingest.errors import IngestError
from funnel_ingest.limits import MessageLimits, json_size
from funnel_ingest.validation import Enrichment, Invalid, Valid, check_message
from funnel_shared.events import ContactEvent, RejectedRecord
from funnel_shared.settings import TopicSettings
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import WRITE_KEY, make_app

TOPICS = TopicSettings()
AUTH = (WRITE_KEY, "")
RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ENRICH = Enrichment(received_at=RECEIVED, source="web", client_ip=None)
NUL_ERROR = "holds U+0000 (the NUL character), which no string may hold"


def _check(raw: dict[str, Any], **limits: Any) -> Valid | Invalid:
    return check_message(
        raw, max_bytes=32 * 1024, enrichment=ENRICH, limits=MessageLimits(**limits)
    )


# --- ids ---------------------------------------------------------------------------------

ID_MESSAGES = {
    "userId": {"type": "track", "event": "E"},
    "anonymousId": {"type": "track", "event": "E", "userId": "u"},
    "messageId": {"type": "track", "event": "E", "userId": "u"},
    "groupId": {"type": "group", "userId": "u"},
    "previousId": {"type": "alias", "userId": "u"},
}


@pytest.mark.parametrize("field", sorted(ID_MESSAGES))
def test_an_id_over_the_length_limit_gets_400_naming_the_field(
    client: TestClient, publisher: FakePublisher, field: str
) -> None:
    body = {**ID_MESSAGES[field], field: "x" * 3000}
    path = f"/v1/{body['type']}"
    answer = client.post(path, json=body, auth=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"] == [
        f"{field}: is 3000 characters long, over the 255 character limit"
    ]
    at_limit = client.post(path, json={**body, field: "x" * 255}, auth=AUTH)
    assert at_limit.status_code == 200, at_limit.text
    assert len(publisher.sent) == 1


@pytest.mark.parametrize("control", ["\x01", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
@pytest.mark.parametrize("field", sorted(ID_MESSAGES))
def test_an_id_with_a_control_character_is_refused(field: str, control: str) -> None:
    outcome = _check({**ID_MESSAGES[field], field: f"a{control}b"})
    assert isinstance(outcome, Invalid) and outcome.reason == "invalid_id"
    assert outcome.errors == [
        f"{field}: holds the control character U+{ord(control):04X}, not allowed in ids"
    ]


def test_the_id_length_limit_is_a_setting() -> None:
    publisher = FakePublisher()
    with TestClient(make_app(publisher, max_id_chars=10)) as client:
        long = client.post("/v1/track", json={"userId": "u" * 11, "event": "E"}, auth=AUTH)
        assert long.json()["errors"] == [
            "userId: is 11 characters long, over the 10 character limit"
        ]
        assert client.post(
            "/v1/track", json={"userId": "u" * 10, "event": "E"}, auth=AUTH
        ).is_success


def test_numeric_ids_and_unicode_ids_within_the_limit_are_fine() -> None:
    outcome = _check({"type": "track", "event": "E", "userId": 12345, "anonymousId": "zoë-🎉"})
    assert isinstance(outcome, Valid), outcome
    assert outcome.event.user_id == "12345"


# --- U+0000 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ({"traits": {"name": "a\x00b"}}, "traits.name"),
        ({"traits": {"na\x00me": "x"}}, "traits.na\\u0000me"),
        ({"traits": {"tags": ["ok", {"deep": ["x", "\x00"]}]}}, "traits.tags[1].deep[1]"),
        ({"context": {"page": {"title": "\x00"}}}, "context.page.title"),
        ({"integrations": {"\x00": True}}, "integrations.\\u0000"),
        ({"channel": "\x00"}, "channel"),
        ({"timestamp": "\x00"}, "timestamp"),
    ],
)
def test_nul_anywhere_in_a_single_message_gets_400_naming_its_path(
    client: TestClient, publisher: FakePublisher, message: dict[str, Any], path: str
) -> None:
    body = {"userId": "u", **message}
    answer = client.post("/v1/identify", json=body, auth=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"] == [f"{path}: {NUL_ERROR}"]
    assert publisher.sent == []


def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = {"userId": "u", "traits": {"path": "C:\\u0000"}}  # A backslash, then 'u0000'.
    assert client.post("/v1/identify", json=body, auth=AUTH).status_code == 200
    [(_, _, value, _)] = publisher.sent
    assert ContactEvent.model_validate_json(value).traits == {"path": "C:\\u0000"}


def test_a_batch_item_with_nul_is_dead_lettered_with_its_path_and_the_rest_accepted(
    client: TestClient, publisher: FakePublisher
) -> None:
    items = [
        {"type": "identify", "userId": "bad", "traits": {"t": ["\x00"]}, "messageId": "m-bad"},
        {"type": "identify", "userId": "good", "traits": {"t": "fine"}, "messageId": "m-good"},
    ]
    answer = client.post("/v1/batch", json={"batch": items}, auth=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert (rejected["index"], rejected["errors"]) == (0, [f"traits.t[0]: {NUL_ERROR}"])
    [(_, _, dead, _)] = publisher.on(TOPICS.rejected)
    letter = RejectedRecord.model_validate_json(dead)
    assert letter.errors == [f"traits.t[0]: {NUL_ERROR}"]
    assert json.loads(letter.original) == items[0]
    [(_, key, _, _)] = publisher.on(TOPICS.contact_events)
    assert key == "good"


def test_nul_in_batch_level_context_refuses_the_batch(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}], "context": {"x": "\x00"}}
    answer = client.post("/v1/batch", json=body, auth=AUTH)
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["context.x: holds U+0000"]
    assert publisher.sent == []


# --- event time --------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def test_a_far_future_timestamp_without_sent_at_becomes_received_at_and_is_kept() -> None:
    outcome = _check(
        {"type": "track", "userId": "u", "event": "E", "timestamp": "9999-12-01T00:00:00Z"}
    )
    assert isinstance(outcome, Valid), outcome
    assert outcome.event.timestamp == RECEIVED
    assert outcome.event.original_timestamp == datetime(9999, 12, 1, tzinfo=UTC)


def test_the_bound_applies_after_skew_correction() -> None:
    # The client clock is a day ahead and says so through sentAt: corrected, it is now.
    ahead = RECEIVED + timedelta(days=1)
    corrected = _check(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": _stamp(ahead - timedelta(seconds=30)),
            "sentAt": _stamp(ahead),
        }
    )
    assert isinstance(corrected, Valid)
    assert corrected.event.timestamp == RECEIVED - timedelta(seconds=30)
    # An event stamped a year after it was sent: corrected, still a year ahead.
    sent = RECEIVED
    future = _check(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": _stamp(sent + timedelta(days=365)),
            "sentAt": _stamp(sent),
        }
    )
    assert isinstance(future, Valid)
    assert future.event.timestamp == RECEIVED
    assert future.event.original_timestamp == sent + timedelta(days=365)


@pytest.mark.parametrize(
    ("ahead", "believed"),
    [
        (timedelta(minutes=4, seconds=59), True),
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, seconds=1), False),
    ],
)
def test_times_within_the_tolerance_are_believed(ahead: timedelta, believed: bool) -> None:
    outcome = _check(
        {"type": "track", "userId": "u", "event": "E", "timestamp": _stamp(RECEIVED + ahead)}
    )
    assert isinstance(outcome, Valid)
    assert outcome.event.timestamp == (RECEIVED + ahead if believed else RECEIVED)


def test_the_tolerance_is_a_setting_and_past_times_are_kept() -> None:
    ahead = _check(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": _stamp(RECEIVED + timedelta(minutes=1)),
        },
        future_tolerance=timedelta(0),
    )
    assert isinstance(ahead, Valid) and ahead.event.timestamp == RECEIVED
    old = _check(
        {"type": "track", "userId": "u", "event": "E", "timestamp": "1990-01-01T00:00:00Z"}
    )
    assert isinstance(old, Valid)
    assert old.event.timestamp == datetime(1990, 1, 1, tzinfo=UTC)


def test_over_http_the_future_time_is_replaced(
    client: TestClient, publisher: FakePublisher
) -> None:
    body = {"userId": "u", "event": "E", "timestamp": "9999-12-01T00:00:00Z"}
    assert client.post("/v1/track", json=body, auth=AUTH).status_code == 200
    [(_, _, value, _)] = publisher.sent
    event = ContactEvent.model_validate_json(value)
    assert event.timestamp == event.received_at
    assert event.original_timestamp == datetime(9999, 12, 1, tzinfo=UTC)


# --- merged batch sizes ------------------------------------------------------------------

text = st.text(st.characters(exclude_characters="\x00"), max_size=6)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | text
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.sampled_from(["a", "b", "c", "ü", "library"]), json_values, max_size=4)
items = st.dictionaries(
    st.sampled_from(["type", "userId", "context", "integrations", "sentAt", "x"]),
    json_values | objects,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(
    batch=st.lists(items | json_values, max_size=4),
    context=objects | json_values,
    integrations=objects | st.none(),
    sent_at=st.none() | text,
)
def test_merged_sizes_are_exactly_the_size_of_the_merged_message(
    batch: list[Any], context: Any, integrations: Any, sent_at: Any
) -> None:
    body: dict[str, Any] = {"batch": batch, "context": context, "integrations": integrations}
    if sent_at is not None:
        body["sentAt"] = sent_at
    unpacked = unpack_batch(body, max_messages=10)
    for item, measured in zip(unpacked, unpacked.measured, strict=True):
        if isinstance(item, dict):
            assert measured is not None and measured.size == json_size(item)
        else:
            assert measured is None


def test_merged_size_counts_a_deep_override() -> None:
    base = {"library": {"name": "x", "version": "1"}, "ip": "1.2.3.4"}
    own = {"library": {"name": "own", "extra": {"k": [1, 2]}}}
    body = {"batch": [{"userId": "u", "context": own}], "context": base}
    unpacked = unpack_batch(body, max_messages=1)
    merged = {"userId": "u", "context": deep_merge(base, own)}
    assert unpacked.measured[0] is not None
    assert unpacked.measured[0].size == json_size(merged)


def test_a_batch_whose_merged_messages_are_too_large_gets_413_before_any_is_validated() -> None:
    context = {"blob": "x" * 1000}
    body = {
        "batch": [{"userId": f"u{i}", "type": "track", "event": "E"} for i in range(100)],
        "context": context,
    }
    with pytest.raises(IngestError) as refused:
        unpack_batch(body, max_messages=2500, max_merged_bytes=50_000)
    assert refused.value.status == 413
    assert "over the 50000 byte limit" in refused.value.message
    assert unpack_batch(body, max_messages=2500, max_merged_bytes=200_000).merged_bytes > 100_000


def test_the_issue_batch_of_2500_copies_of_a_large_context_gets_413(
    client: TestClient, publisher: FakePublisher
) -> None:
    # About 457 KB on the wire: a 320 KB batch-level context and 2,500 small messages.
    context = {"page": {"blob": "x" * 320_000}}
    batch = [{"type": "track", "userId": f"u{i}", "event": "E"} for i in range(2500)]
    body = json.dumps({"batch": batch, "context": context})
    assert 400_000 < len(body) < 500 * 1024
    answer = client.post("/v1/batch", content=body, auth=AUTH)
    assert answer.status_code == 413, answer.text
    assert "with the batch-level context and integrations merged" in answer.json()["message"]
    assert publisher.sent == []


def test_a_batch_with_one_oversized_merged_item_gets_413_naming_it(
    client: TestClient, publisher: FakePublisher
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "E"},
        {"type": "track", "userId": "v", "event": "E", "context": {"big": "y" * 20_000}},
    ]
    body = {"batch": batch, "context": {"shared": "x" * 15_000}}
    answer = client.post("/v1/batch", json=body, auth=AUTH)
    assert answer.status_code == 413, answer.text
    assert "messages at index 1 are over the 32768 byte limit" in answer.json()["message"]
    assert publisher.sent == []


# --- metric labels -----------------------------------------------------------------------


def _label_values(client: TestClient) -> set[tuple[str, str]]:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    found = set()
    for metric in registry.collect():
        if metric.name == "ingest_requests":
            for sample in metric.samples:
                found.add((sample.labels["route"], sample.labels["method"]))
    return found


def test_random_methods_and_paths_add_no_label_values(client: TestClient) -> None:
    # One request each of what the random ones can become: known routes, other, other method.
    client.get("/healthz")
    client.post("/v1/track", json={"userId": "u", "event": "E"}, auth=AUTH)
    client.request("BREW", "/healthz")
    client.get("/no/such/path")
    client.request("DELETE", "/v1/track")
    before = _label_values(client)
    rng = random.Random(15)
    for _ in range(50):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
        path = "/" + "/".join(
            "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 10)))
            for _ in range(rng.randint(1, 4))
        )
        client.request(method, rng.choice([path, "/v1/track", "/healthz"]))
    assert _label_values(client) == before
    assert {method for _, method in before} <= {"GET", "POST", "DELETE", "other"}
