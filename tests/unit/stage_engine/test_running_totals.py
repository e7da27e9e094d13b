"""Running totals: ``decide`` publishes a summed rule's total when, and only when, it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from funnel_shared.events import (
    ContactEvent,
    StageChanged,
    StageOutput,
    TotalChanged,
    merge_id,
    total_changed_id,
)
from funnel_stage_engine.domain.commands import Forward, Link, Tick
from funnel_stage_engine.domain.contact import Decision, Message, decide
from funnel_stage_engine.domain.engine import ContactState
from pydantic import TypeAdapter

from tests.support.journeys import T0, days, funnel, track

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

VALUE = funnel(
    """
name: value
stages: [customer, lifetime]
rules:
  - id: lifetime
    to: lifetime
    backward: true
    match: {event: [Order Completed, Order Refunded]}
    sum: {property: revenue, at_least: 1000, within: 7d}
  - id: all-time
    to: customer
    match: {event: Order Completed}
    sum: {property: revenue, at_least: 5000}
"""
)
PLAIN = funnel(
    """
name: plain
stages: [visitor]
rules:
  - {id: visit, to: visitor, match: {type: page}}
"""
)
FUNNELS = [VALUE, PLAIN]


def _order(amount: Any, at: timedelta, contact: str = "c-1", **kwargs: Any) -> ContactEvent:
    return track(
        "Order Completed", properties={"revenue": amount}, at=T0 + at, contact=contact, **kwargs
    )


def _decide(state: ContactState, message: Message) -> Decision:
    return decide(state, message, funnels=FUNNELS, processed_at=NOW)


def _totals(decision: Decision) -> list[TotalChanged]:
    return [o for o in decision.outputs if isinstance(o, TotalChanged)]


def _run(events: list[Message]) -> tuple[ContactState, list[Decision]]:
    state, decisions = ContactState(), []
    for event in events:
        decision = _decide(state, event)
        decisions.append(decision)
        state = decision.state if decision.state is not None else state
    return state, decisions


def test_an_amount_that_moves_no_one_still_publishes_the_running_total() -> None:
    order = _order(250, days(0))
    decision = _decide(ContactState(), order)

    by_rule = {total.rule_id: total for total in _totals(decision)}
    assert set(by_rule) == {"lifetime", "all-time"}
    lifetime = by_rule["lifetime"]
    assert (lifetime.contact_id, lifetime.funnel, lifetime.to_stage) == ("c-1", "value", "lifetime")
    assert (lifetime.total, lifetime.at_least, lifetime.within_seconds) == (250.0, 1000.0, 604800.0)
    assert (lifetime.amounts, lifetime.ignored, lifetime.sequence) == (1, 0, 1)
    assert (lifetime.cause_kind, lifetime.cause_message_id) == ("event", order.message_id)
    assert (lifetime.event_time, lifetime.processed_at) == (order.timestamp, NOW)
    assert by_rule["all-time"].within_seconds is None
    # The deterministic id: a replay of the event publishes the same one.
    assert lifetime.id == total_changed_id(
        funnel="value", contact_id="c-1", rule_id="lifetime", cause_id=order.message_id, sequence=1
    )
    # No stage change: the totals are all there is, and the record is not a change.
    assert [type(o).__name__ for o in decision.outputs] == ["TotalChanged", "TotalChanged"]
    assert decision.outcome == "unchanged"


def test_totals_add_up_and_their_sequence_grows_with_each_change() -> None:
    _, decisions = _run([_order(600, days(0)), _order(300, days(1)), _order(200, days(2))])
    lifetime = [t for d in decisions for t in _totals(d) if t.rule_id == "lifetime"]
    assert [(t.total, t.sequence) for t in lifetime] == [(600, 1), (900, 2), (1100, 3)]
    # The third crossed the threshold: the stage change explains it with the same total.
    # The totals follow the stage change they explain.
    assert [type(o).__name__ for o in decisions[2].outputs] == [
        "StageChanged",
        "TotalChanged",
        "TotalChanged",
    ]
    [change] = [o for o in decisions[2].outputs if isinstance(o, StageChanged)]
    assert change.explanation is not None and change.explanation.sum is not None
    assert change.explanation.sum.total == lifetime[-1].total


def test_nothing_is_published_when_no_total_changes() -> None:
    first = _order(600, days(0))
    state, _ = _run([first])
    # An amount of 0, an event no summed rule matches, a duplicate messageId.
    zero = _decide(state, _order(0, days(1)))
    assert _totals(zero) == []
    assert state.sums["value"]["lifetime"].changes == 1
    assert zero.state is not None and zero.state.sums["value"]["lifetime"].changes == 1
    page = track("Signed Up", at=T0 + days(1), contact="c-1")
    assert _totals(_decide(state, page)) == []
    again = first.model_copy(update={"timestamp": T0 + days(2)})
    assert _totals(_decide(state, again)) == []


def test_a_refund_lowers_the_total_and_an_unusable_value_is_counted_as_ignored() -> None:
    refund = track("Order Refunded", properties={"revenue": -200}, at=T0 + days(1), contact="c-1")
    text = _order("19.99", days(2))
    _, decisions = _run([_order(600, days(0)), refund, text])
    lifetime = [t for d in decisions for t in _totals(d) if t.rule_id == "lifetime"]
    assert [(t.total, t.ignored, t.sequence) for t in lifetime] == [
        (600, 0, 1),
        (400, 0, 2),
        (400, 1, 3),
    ]


def test_an_amount_leaving_the_window_lowers_the_total_at_the_next_amount_not_before() -> None:
    state, _ = _run([_order(600, days(0))])
    # Time passing changes no total: a tick long after the window fires nothing.
    tick = _decide(state, Tick(contact_id="c-1", now=T0 + days(30)))
    assert _totals(tick) == []
    # The next amount, eight days on, leaves the first outside its window.
    later = _decide(state, _order(100, days(8)))
    [lifetime] = [t for t in _totals(later) if t.rule_id == "lifetime"]
    assert (lifetime.total, lifetime.amounts) == (100, 1)
    [all_time] = [t for t in _totals(later) if t.rule_id == "all-time"]
    assert all_time.total == 700


def test_a_forwarded_event_publishes_the_owners_total() -> None:
    event = _order(300, days(0), contact="a-anon")
    event = event.model_copy(update={"user_id": None, "anonymous_id": "a-anon"})
    decision = _decide(ContactState(), Forward(user_id="u-1", event=event))
    assert {(t.contact_id, t.total) for t in _totals(decision)} == {("u-1", 300)}


def test_a_merge_publishes_the_survivors_combined_totals() -> None:
    anonymous_order = _order(400, days(0), contact="a-1").model_copy(
        update={"user_id": None, "anonymous_id": "a-1"}
    )
    anonymous, _ = _run([anonymous_order])
    user, _ = _run([_order(500, days(1), contact="u-1")])
    identify = track("Signed In", at=T0 + days(2), contact="u-1", anonymousId="a-1")
    link = Link(
        anonymous_id="a-1",
        user_id="u-1",
        message_id=identify.message_id,
        event_time=identify.timestamp,
    )
    [transfer] = _decide(anonymous, link).commands

    decision = _decide(user, transfer)

    the_merge = merge_id(merged_contact_id="a-1", contact_id="u-1")
    by_rule = {t.rule_id: t for t in _totals(decision)}
    assert {rule: (t.total, t.sequence) for rule, t in by_rule.items()} == {
        "lifetime": (900, 2),
        "all-time": (900, 2),
    }
    assert {(t.contact_id, t.cause_kind, t.cause_message_id) for t in by_rule.values()} == {
        ("u-1", "merge", the_merge)
    }
    # Applied again (a replayed transfer): the merge id is known, nothing changes.
    assert decision.state is not None
    assert _totals(_decide(decision.state, transfer)) == []


def test_a_total_changed_is_a_stage_output_on_the_wire() -> None:
    [total, *_] = _totals(_decide(ContactState(), _order(250, days(0))))
    wire = total.model_dump_json(by_alias=True)
    assert '"kind":"total_changed"' in wire and '"withinSeconds":604800.0' in wire
    assert TypeAdapter(StageOutput).validate_json(wire) == total


def test_a_merge_resent_with_more_history_publishes_a_new_total_under_a_new_id() -> None:
    def anonymous_order(amount: float, at: timedelta) -> ContactEvent:
        return _order(amount, at, contact="a-1").model_copy(
            update={"user_id": None, "anonymous_id": "a-1"}
        )

    # The anonymous contact applied one more event before a crash let it store its pointer.
    first_order = anonymous_order(400, days(0))
    before_crash, _ = _run([first_order])
    more, _ = _run([first_order, anonymous_order(100, days(1))])
    user, _ = _run([_order(500, days(1), contact="u-1")])
    link = Link(anonymous_id="a-1", user_id="u-1", message_id="m-identify", event_time=T0)
    [first] = _decide(before_crash, link).commands
    [again] = _decide(more, link).commands

    merged = _decide(user, first)
    assert merged.state is not None
    remerged = _decide(merged.state, again)

    [one] = [t for t in _totals(merged) if t.rule_id == "all-time"]
    [two] = [t for t in _totals(remerged) if t.rule_id == "all-time"]
    assert (one.total, one.sequence, two.total, two.sequence) == (900, 2, 1000, 3)
    assert one.cause_message_id == two.cause_message_id and one.id != two.id
