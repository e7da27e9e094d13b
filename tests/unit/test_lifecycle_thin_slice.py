from datetime import UTC, datetime

from funnel_shared.events import ContactEvent
from funnel_stage_engine.domain import evaluate

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _event(event: str = "Signed Up", message_id: str = "m-1", **extra: object) -> ContactEvent:
    return ContactEvent.model_validate(
        {
            "type": "track",
            "messageId": message_id,
            "userId": "contact-1",
            "event": event,
            "timestamp": "2026-11-23T11:00:00Z",
            "receivedAt": "2026-11-23T11:00:01Z",
            "source": "web",
            **extra,
        }
    )


def test_signing_up_makes_a_new_contact_a_lifecycle_lead() -> None:
    stages, changes = evaluate(
        {}, _event(context={"traits": {"email": "a@example.com"}}), processed_at=NOW
    )
    assert stages == {"lifecycle": {"current": "lead", "furthest": "lead"}}
    [change] = changes
    assert (change.funnel, change.from_stage, change.to_stage) == ("lifecycle", None, "lead")
    assert (change.rule_id, change.cause_message_id) == ("lifecycle.signed-up", "m-1")
    assert change.event_time == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    assert change.processed_at == NOW
    assert change.traits == {"email": "a@example.com"}


def test_stage_change_id_is_the_same_on_replay() -> None:
    _, first = evaluate({}, _event(), processed_at=NOW)
    _, replay = evaluate({}, _event(), processed_at=datetime(2030, 1, 1, tzinfo=UTC))
    _, other = evaluate({}, _event(message_id="m-2"), processed_at=NOW)
    assert first[0].id == replay[0].id
    assert first[0].id != other[0].id


def test_signing_up_again_changes_nothing() -> None:
    stages, _ = evaluate({}, _event(), processed_at=NOW)
    again, changes = evaluate(stages, _event(message_id="m-2"), processed_at=NOW)
    assert (again, changes) == (stages, [])


def test_a_contact_further_along_is_never_moved_back() -> None:
    customer = {"lifecycle": {"current": "customer", "furthest": "customer"}}
    assert evaluate(customer, _event(), processed_at=NOW) == (customer, [])


def test_unrelated_events_change_nothing() -> None:
    assert evaluate({}, _event(event="Product Viewed"), processed_at=NOW) == ({}, [])


def test_evaluate_does_not_mutate_the_given_state() -> None:
    state: dict[str, dict[str, str]] = {}
    evaluate(state, _event(), processed_at=NOW)
    assert state == {}
