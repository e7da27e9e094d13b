"""The engine's per-contact state: dedupe, known traits, many funnels, and the stored form."""

from __future__ import annotations

from datetime import UTC, datetime

from funnel_shared.events import StageChanged, stage_change_id
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, evaluate

from tests.support.journeys import (
    PROCESSED_AT,
    T0,
    days,
    drive,
    funnel,
    identify,
    moves,
    page,
    track,
)

LADDER = funnel(
    """
name: ladder
stages: [bronze, silver, gold]
rules:
  - {id: silver, to: silver, match: {event: Silver}}
  - {id: bronze, to: bronze, match: {type: [page, track]}}
  - {id: views, to: gold, match: {type: page}, count: {at_least: 2, within: 1d}}
"""
)


def test_a_message_already_applied_changes_nothing() -> None:
    state, first = drive([LADDER], [page("Home", message_id="m-1")])
    again = evaluate(state, page("Home", message_id="m-1"), funnels=[LADDER], processed_at=T0)
    assert again.outputs == []
    assert again.state == state
    assert first  # The first delivery did move the contact.


def test_a_redelivered_event_is_not_counted_twice() -> None:
    _, outputs = drive([LADDER], [page("A", message_id="m-1"), page("A", message_id="m-1")])
    assert moves(outputs, "ladder") == [(None, "bronze")]


def test_the_dedupe_window_is_bounded_per_contact() -> None:
    events = [page("Home", message_id=f"m-{i}", at=T0 + days(i)) for i in range(5)]
    state = ContactState()
    for event in events:
        state = evaluate(
            state, event, funnels=[LADDER], processed_at=PROCESSED_AT, dedupe_window=3
        ).state
    assert state.seen_message_ids == ["m-2", "m-3", "m-4"]
    # m-0 fell out of the window, so it is evaluated again (and counted again).
    replay = evaluate(state, events[0], funnels=[LADDER], processed_at=PROCESSED_AT)
    assert replay.state.seen_message_ids[-1] == "m-0"


def test_every_event_is_evaluated_against_every_funnel() -> None:
    state, outputs = drive(
        load_funnels(),
        [
            track("Opportunity Created", message_id="m-1"),
            track("Order Completed", message_id="m-2"),
        ],
    )
    assert {(o.funnel, type(o).__name__, o.cause_message_id) for o in outputs} == {
        ("lifecycle", "StageChanged", "m-1"),
        ("hourglass", "StageChanged", "m-1"),
        ("lifecycle", "StageChanged", "m-2"),
        ("aida", "StageChanged", "m-2"),
        ("hourglass", "StageBlocked", "m-2"),
    }
    assert set(state.funnels) == {"lifecycle", "aida", "hourglass"}


def test_funnels_move_independently_of_each_other() -> None:
    state, outputs = drive([LADDER, *load_funnels()], [track("Silver"), page("Pricing")])
    assert moves(outputs, "ladder") == [(None, "silver")]
    assert moves(outputs, "lifecycle") == [(None, "visitor")]
    assert state.funnels["aida"].current == "attention"


def test_known_traits_travel_with_later_stage_changes() -> None:
    journey = [
        identify({"email": "zoe@example.com"}, at=T0),
        track("Anything", context={"traits": {"name": "Zoë"}}, at=T0 + days(1)),
        track("Silver", at=T0 + days(2)),
    ]
    state, outputs = drive([LADDER], journey)
    [change] = [o for o in outputs if isinstance(o, StageChanged) and o.to_stage == "silver"]
    assert change.traits == {"email": "zoe@example.com", "name": "Zoë"}
    assert state.traits == {"email": "zoe@example.com", "name": "Zoë"}


def test_a_stage_change_says_why_and_when() -> None:
    processed_at = datetime(2027, 1, 1, tzinfo=UTC)
    event = track("Silver", message_id="m-why", contact="c-9", at=T0)
    [change] = evaluate(ContactState(), event, funnels=[LADDER], processed_at=processed_at).outputs
    assert isinstance(change, StageChanged)
    assert change.model_dump(by_alias=False, exclude={"traits"}) == {
        "kind": "stage_changed",
        "id": stage_change_id(
            funnel="ladder", contact_id="c-9", message_id="m-why", to_stage="silver"
        ),
        "funnel": "ladder",
        "funnel_version": LADDER.version,
        "contact_id": "c-9",
        "from_stage": None,
        "to_stage": "silver",
        "furthest_stage": "silver",
        "rule_id": "silver",
        "cause_message_id": "m-why",
        "cause_kind": "event",
        "cause_source": "web",
        "cause_source_kind": "browser",
        "cause_event_type": "track",
        "cause_event_name": "Silver",
        "event_time": T0,
        "processed_at": processed_at,
        "explanation": None,  # Not a counted or summed rule.
    }


def test_replaying_an_event_later_yields_the_same_ids() -> None:
    event = track("Silver", message_id="m-1")
    first = evaluate(ContactState(), event, funnels=[LADDER], processed_at=T0).outputs
    later = evaluate(ContactState(), event, funnels=[LADDER], processed_at=T0 + days(9)).outputs
    assert [o.id for o in first] == [o.id for o in later]


def test_evaluate_does_not_mutate_the_given_state() -> None:
    state, _ = drive([LADDER], [page("A")])
    before = state.to_json()
    evaluate(state, page("B", at=T0 + days(0.5)), funnels=[LADDER], processed_at=T0)
    assert state.to_json() == before


def test_the_state_survives_its_stored_json_form() -> None:
    state, _ = drive([LADDER], [identify({"email": "a@b"}), page("A"), track("Silver")])
    stored = state.to_json()
    assert ContactState.from_json(stored) == state
    assert ContactState.from_json(None) == ContactState()
    assert ContactState.from_json({}) == ContactState()
