"""Ordering modes, ``from`` restrictions, backward rules, and which rule wins."""

from __future__ import annotations

from funnel_shared.events import StageBlocked, stage_blocked_id
from funnel_stage_engine.domain.engine import ContactState, FunnelState

from tests.support.journeys import FREE, blocked, drive, funnel, moves, track

STRICT = funnel(
    """
name: steps
ordering: strict
stages: [one, two, three]
rules:
  - {id: to-one, to: one, match: {event: One}}
  - {id: to-two, to: two, match: {event: Two}}
  - {id: to-three, to: three, match: {event: Three}}
  - {id: restart, to: one, match: {event: Restart}, backward: true}
"""
)

FORWARD = funnel(
    """
name: ladder
stages: [bronze, silver, gold]
rules:
  - {id: gold, to: gold, match: {event: Gold}}
  - {id: silver, to: silver, match: {event: Silver}}
  - {id: bronze, to: bronze, match: {event: Bronze}}
  - {id: refund, to: bronze, match: {event: Order Refunded}, backward: true}
  - {id: upgrade, to: gold, from: silver, match: {event: Upgraded}}
"""
)


def test_strict_funnel_refuses_to_skip_a_step_and_records_the_attempt() -> None:
    state, outputs = drive([STRICT], [track("One"), track("Three", message_id="m-skip")])
    assert moves(outputs, "steps") == [(None, "one")]
    assert blocked(outputs, "steps") == [("one", "three")]
    attempt = outputs[-1]
    assert isinstance(attempt, StageBlocked)
    assert attempt.rule_id == "to-three"
    assert attempt.id == stage_blocked_id(
        funnel="steps", contact_id="contact-1", message_id="m-skip", attempted_stage="three"
    )
    assert _position(state, "steps") == ("one", "one")


def test_strict_funnel_is_entered_only_at_its_first_stage() -> None:
    state, outputs = drive([STRICT], [track("Two")])
    assert outputs == []
    assert "steps" not in state.funnels
    state, outputs = drive([STRICT], [track("Two"), track("One")])
    assert moves(outputs, "steps") == [(None, "one")]


def test_strict_funnel_moves_one_step_at_a_time() -> None:
    _, outputs = drive([STRICT], [track("One"), track("Two"), track("Three")])
    assert moves(outputs, "steps") == [(None, "one"), ("one", "two"), ("two", "three")]


def test_strict_funnel_ignores_a_step_back_without_permission() -> None:
    _, outputs = drive([STRICT], [track("One"), track("Two"), track("One")])
    assert moves(outputs, "steps") == [(None, "one"), ("one", "two")]
    assert blocked(outputs, "steps") == []


def test_strict_funnel_backward_rule_may_go_back_and_keeps_the_furthest() -> None:
    state, outputs = drive([STRICT], [track("One"), track("Two"), track("Restart")])
    assert moves(outputs, "steps")[-1] == ("two", "one")
    assert _position(state, "steps") == ("one", "two")


def test_forward_funnel_may_skip_ahead() -> None:
    _, outputs = drive([FORWARD], [track("Gold")])
    assert moves(outputs, "ladder") == [(None, "gold")]


def test_forward_funnel_refuses_to_go_back() -> None:
    state, outputs = drive([FORWARD], [track("Gold"), track("Silver"), track("Bronze")])
    assert moves(outputs, "ladder") == [(None, "gold")]
    assert blocked(outputs, "ladder") == []
    assert _position(state, "ladder") == ("gold", "gold")


def test_forward_funnel_repeating_the_current_stage_changes_nothing() -> None:
    _, outputs = drive([FORWARD], [track("Silver"), track("Silver")])
    assert moves(outputs, "ladder") == [(None, "silver")]


def test_backward_rule_moves_back_and_the_furthest_stage_stays() -> None:
    state, outputs = drive([FORWARD], [track("Gold"), track("Order Refunded")])
    [_, refund] = outputs
    assert (refund.from_stage, refund.to_stage, refund.furthest_stage) == (
        "gold", "bronze", "gold",
    )  # fmt: skip
    assert _position(state, "ladder") == ("bronze", "gold")


def test_free_funnel_moves_anywhere() -> None:
    free = FREE
    state, outputs = drive([free], [track("C"), track("A")])
    assert moves(outputs, "anywhere") == [(None, "c"), ("c", "a")]
    assert _position(state, "anywhere") == ("a", "c")


def test_rule_with_from_stages_applies_only_from_those_stages() -> None:
    _, from_bronze = drive([FORWARD], [track("Bronze"), track("Upgraded")])
    _, from_silver = drive([FORWARD], [track("Silver"), track("Upgraded")])
    _, outside = drive([FORWARD], [track("Upgraded")])
    assert moves(from_bronze, "ladder") == [(None, "bronze")]
    assert moves(from_silver, "ladder") == [(None, "silver"), ("silver", "gold")]
    assert moves(outside, "ladder") == []


def test_the_first_rule_in_file_order_that_can_move_the_contact_wins() -> None:
    two_rules = funnel(
        """
name: order
stages: [a, b, c]
rules:
  - {id: first, to: b, match: {event: Go}}
  - {id: second, to: c, match: {event: Go}}
"""
    )
    _, outputs = drive([two_rules], [track("Go"), track("Go")])
    # One move per funnel per event: first to b, then "first" cannot move (already b).
    assert [(o.rule_id, o.to_stage) for o in outputs] == [("first", "b"), ("second", "c")]


def test_a_current_stage_removed_from_the_definition_counts_as_outside_the_funnel() -> None:
    old = ContactState(funnels={"steps": FunnelState(current="gone", furthest="gone")})
    state, outputs = drive([STRICT], [track("One")], state=old)
    assert moves(outputs, "steps") == [("gone", "one")]
    assert _position(state, "steps") == ("one", "one")


def _position(state: ContactState, funnel: str) -> tuple[str, str]:
    position = state.funnels[funnel]
    return position.current, position.furthest
