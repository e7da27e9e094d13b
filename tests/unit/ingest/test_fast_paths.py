"""The ingest hot path's shortcuts give exactly what the plain code they replaced gave.

- ``normalize`` builds the event from the validated message's fields instead of
  ``model_dump(by_alias=True)``: same event (byte for byte on the wire) or the same
  refusal, for any message, including extra fields named like ContactEvent fields.
- ``new_message_id`` is a version 4 UUID in its canonical text form.
- A single message's answer and delivery (its ack awaited directly) are what the general
  code (pydantic's encoding, ``publish_all``) gives.
- ``limits.measure`` (one encoding for the size and the U+0000 search) agrees with
  ``json_size`` and a full ``find_nul`` walk.

The reference implementations below are the code as it was before (issue 19).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaConnectionError
from funnel_ingest.api_models import Accepted
from funnel_ingest.limits import find_nul, json_size, measure
from funnel_ingest.normalize import new_message_id, normalize
from funnel_ingest.produce import ProducerHandle
from funnel_ingest.tracking import _accepted_answer, _answer
from funnel_shared import publishing
from funnel_shared.events import ContactEvent, SegmentMessage, SegmentMessageBase, SourceKind
from funnel_shared.ids import is_blocked_id
from funnel_shared.publishing import OutboundRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tests.support.fake_publisher import FakePublisher
from tests.unit.ingest.test_fuzz import json_values, messages

RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
_adapter: TypeAdapter[Any] = TypeAdapter(SegmentMessage)


def _reference_normalize(
    message: SegmentMessageBase,
    *,
    received_at: datetime,
    source: str,
    client_ip: str | None,
    source_kind: SourceKind,
    new_message_id: Callable[[], str],
    future_tolerance: timedelta = timedelta(minutes=5),
) -> ContactEvent:
    """``normalize`` before issue 19: dump the message by alias, validate it as a ContactEvent."""
    client_time = message.timestamp or message.original_timestamp
    if client_time is None:
        event_time = received_at
    elif message.sent_at is not None:
        event_time = received_at - (message.sent_at - client_time)
    else:
        event_time = client_time
    if event_time - received_at > future_tolerance:
        event_time = received_at
    context = dict(message.context)
    if client_ip is not None and "ip" not in context:
        context["ip"] = client_ip
    fields = message.model_dump(by_alias=True, exclude={"context", "timestamp"})
    for id_field in ("userId", "anonymousId"):
        if is_blocked_id(fields.get(id_field)):
            fields[id_field] = None
    fields.update(
        messageId=message.message_id or new_message_id(),
        context=context,
        timestamp=event_time,
        originalTimestamp=message.original_timestamp or message.timestamp,
        receivedAt=received_at,
        source=source,
        sourceKind=source_kind,
    )
    return ContactEvent.model_validate(fields)


# Extra fields named like ContactEvent fields, by wire name and by Python name, with
# values of the right type and of the wrong one: the cases the shortcut must not change.
_COLLIDING = [
    "event",
    "name",
    "category",
    "groupId",
    "group_id",
    "previousId",
    "previous_id",
    "traits",
    "properties",
    "receivedAt",
    "received_at",
    "source",
    "sourceKind",
    "source_kind",
    "messageId",
    "message_id",
    "user_id",
    "anonymous_id",
    "sent_at",
    "original_timestamp",
    "integrations",
    "type",
    "_fields_set",
]
_collisions = st.dictionaries(
    st.sampled_from(_COLLIDING),
    st.one_of(json_values, st.just("2026-01-01T00:00:00Z"), st.just({"a": 1})),
    max_size=2,
)


def _outcome(normalizer: Callable[..., ContactEvent], message: SegmentMessageBase) -> Any:
    try:
        event = normalizer(
            message,
            received_at=RECEIVED,
            source="web",
            client_ip="10.1.2.3",
            source_kind="server",
            new_message_id=lambda: "assigned",
        )
    except ValidationError as exc:
        return ("refused", [(error["loc"], error["type"]) for error in exc.errors()])
    except OverflowError:
        return ("overflow",)
    # By wire name and in order, as the record's JSON has them (some texts, such as lone
    # surrogates, which ingest refuses before this, have no JSON encoding to compare).
    return ("event", list(event.model_dump(by_alias=True).items()), event.model_fields_set)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=messages, extra=_collisions)
def test_normalize_gives_what_dumping_and_validating_gave(
    body: dict[str, Any], extra: dict[str, Any]
) -> None:
    raw = {**body, **extra}
    try:
        message = _adapter.validate_python(raw)
    except (ValidationError, OverflowError):
        return  # Refused before normalize: nothing to compare.
    assert _outcome(normalize, message) == _outcome(_reference_normalize, message)


def test_an_extra_field_of_the_wrong_type_is_still_refused() -> None:
    message = _adapter.validate_python({"type": "identify", "userId": "u", "event": 5})
    try:
        normalize(message, received_at=RECEIVED, source="web", client_ip=None)
    except ValidationError as exc:
        assert [error["loc"] for error in exc.errors()] == [("event",)]
    else:
        raise AssertionError("an identify with event: 5 was accepted")


def test_extra_fields_travel_on_and_cannot_replace_what_ingest_sets() -> None:
    message = _adapter.validate_python(
        {"type": "track", "userId": "u", "event": "E", "channel": "web", "receivedAt": "x"}
    )
    event = normalize(message, received_at=RECEIVED, source="web", client_ip=None)
    assert event.model_extra == {"channel": "web"}
    assert event.received_at == RECEIVED


def test_message_ids_are_version_4_uuids() -> None:
    ids = {new_message_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_a_forked_child_never_repeats_its_parents_message_ids() -> None:
    new_message_id()  # The pool now holds bytes the child must not reuse.
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(read)
        os.write(write, "\n".join(new_message_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = pipe.read().split("\n")
    os.waitpid(child, 0)
    in_parent = [new_message_id() for _ in range(8)]
    assert len(in_child) == 8
    assert not set(in_child) & set(in_parent)


_nul_texts = st.text(max_size=6) | st.sampled_from(["a\x00b", "\x00", "\ud800", "é\x00"])
_nul_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _nul_texts,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(_nul_texts, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(value=_nul_values)
def test_measure_agrees_with_encoding_and_walking(value: Any) -> None:
    size, nul_at = measure(value)
    assert size == json_size(value)
    if size is not None:
        assert nul_at == find_nul(value)


@settings(max_examples=300, deadline=None)
@given(message_id=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_the_single_answer_is_what_pydantic_wrote(message_id: str) -> None:
    assert _accepted_answer(message_id).body == _answer(Accepted(message_id=message_id)).body


def _deliver_one(publisher: FakePublisher, *, direct: bool) -> Any:
    record = OutboundRecord(key="k", value=b"{}", headers=[])
    handle = ProducerHandle(kafka=None, publisher=publisher, timeout_s=1.0)

    async def run() -> Any:
        try:
            if direct:
                acks = await handle.deliver([("topic", record)])
            else:
                acks = await publishing.publish_all(publisher, [("topic", record)])
        except Exception as exc:  # send() itself refused: both raise it.
            return ("raised", exc)
        return ("acks", acks.outcomes)

    return asyncio.run(run())


def test_one_record_is_delivered_as_publish_all_delivers_it() -> None:
    failure = KafkaConnectionError("broker gone")
    for case in ("acked", "ack failed", "send refused"):
        outcomes = []
        for direct in (True, False):
            publisher = FakePublisher()
            if case == "ack failed":
                publisher.fail_with = failure
            elif case == "send refused":
                publisher.refuse_with = failure
            outcomes.append((_deliver_one(publisher, direct=direct), publisher.sent))
        assert outcomes[0] == outcomes[1], case
