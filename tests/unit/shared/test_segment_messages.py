from typing import Any

import pytest
from funnel_shared.events import ContactEvent, SegmentMessage
from pydantic import TypeAdapter, ValidationError

messages: TypeAdapter[Any] = TypeAdapter(SegmentMessage)


def test_track_message_reads_segment_camel_case_fields() -> None:
    message = messages.validate_python(
        {"type": "track", "userId": "u-1", "event": "Signed Up", "messageId": "m-1"}
    )
    assert (message.user_id, message.event, message.message_id) == ("u-1", "Signed Up", "m-1")


@pytest.mark.parametrize("blocked", ["", "null", "undefined", "anonymous", "0", "-1", " NULL "])
def test_blocked_identity_values_count_as_missing(blocked: str) -> None:
    with pytest.raises(ValidationError, match="userId or anonymousId is required"):
        messages.validate_python({"type": "track", "userId": blocked, "event": "Signed Up"})


def test_anonymous_id_alone_is_enough() -> None:
    message = messages.validate_python({"type": "page", "anonymousId": "anon-1"})
    assert message.anonymous_id == "anon-1"


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"type": "track", "userId": "u"}, "event"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "alias", "userId": "u"}, "previousId"),
    ],
)
def test_type_specific_required_fields_are_enforced(body: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValidationError) as caught:
        messages.validate_python(body)
    assert any(missing in error["loc"] for error in caught.value.errors())


def test_unknown_top_level_fields_are_kept() -> None:
    message = messages.validate_python(
        {"type": "track", "userId": "u", "event": "E", "channel": "server"}
    )
    assert message.model_dump()["channel"] == "server"


def test_contact_key_prefers_user_id_over_anonymous_id() -> None:
    event = ContactEvent.model_validate(
        {
            "type": "track",
            "messageId": "m",
            "userId": "user",
            "anonymousId": "anon",
            "timestamp": "2026-01-01T00:00:00Z",
            "receivedAt": "2026-01-01T00:00:00Z",
            "source": "web",
        }
    )
    assert event.contact_key == "user"
    assert event.model_copy(update={"user_id": "null"}).contact_key == "anon"
