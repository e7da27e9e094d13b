"""Summed rules: a numeric property added up over a window of event time, or over all time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from funnel_shared.events import StageChanged
from funnel_stage_engine.domain.definitions import FunnelDefinitionError
from funnel_stage_engine.domain.engine import ContactState
from funnel_stage_engine.domain.identity import merge
from funnel_stage_engine.domain.windows import SUM_ENTRIES

from tests.support.journeys import PROCESSED_AT, T0, days, drive, funnel, moves, track

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
  - {id: order, to: customer, match: {event: Order Completed}}
"""
)
ALL_TIME = funnel(
    """
name: forever
stages: [customer, lifetime]
rules:
  - id: lifetime
    to: lifetime
    match: {event: Order Completed}
    sum: {property: order.total, at_least: 100}
"""
)


def _order(amount: Any, at: timedelta, **kwargs: Any) -> Any:
    return track("Order Completed", properties={"revenue": amount}, at=T0 + at, **kwargs)


def _refund(amount: float, at: timedelta) -> Any:
    return track("Order Refunded", properties={"revenue": amount}, at=T0 + at)


def _sum_changes(outputs: list[Any]) -> list[StageChanged]:
    return [o for o in outputs if isinstance(o, StageChanged) and o.rule_id == "lifetime"]


def test_amounts_on_both_edges_of_the_window_add_up() -> None:
    _, outputs = drive([VALUE], [_order(600, days(0)), _order(400, days(7))])
    [change] = _sum_changes(outputs)
    assert change.event_time == T0 + days(7)


def test_an_amount_just_past_the_window_does_not_count() -> None:
    state, outputs = drive(
        [VALUE], [_order(600, days(0)), _order(400, days(7) + timedelta(seconds=1))]
    )
    assert _sum_changes(outputs) == []
    # The first amount left the window for good: only the newest is kept.
    assert [e.amount for e in state.sums["value"]["lifetime"].entries] == [400]


def test_a_late_amount_counts_where_its_event_time_puts_it() -> None:
    _, outputs = drive(
        [VALUE], [_order(500, days(10)), _order(300, days(14)), _order(200, days(12))]
    )
    [change] = _sum_changes(outputs)
    assert change.event_time == T0 + days(12)


def test_a_refund_is_a_negative_amount() -> None:
    events = [_order(600, days(0)), _refund(-300, days(1)), _order(600, days(2))]
    _, outputs = drive([VALUE], events)
    assert _sum_changes(outputs) == []  # 600 - 300 + 600 = 900
    _, outputs = drive([VALUE], [*events, _order(100, days(3))])
    [change] = _sum_changes(outputs)
    assert change.explanation is not None and change.explanation.sum is not None
    assert change.explanation.sum.total == 1000


def test_the_stage_change_explains_the_total_that_crossed_the_threshold() -> None:
    _, outputs = drive([VALUE], [_order(999.5, days(0)), _order(40, days(1))])
    [change] = _sum_changes(outputs)
    assert change.explanation is not None and change.explanation.count is None
    assert change.explanation.model_dump() == {
        "count": None,
        "sum": {
            "property": "revenue",
            "total": 1039.5,
            "atLeast": 1000.0,
            "withinSeconds": 7 * 86400.0,
        },
    }
    [plain] = [o for o in outputs if isinstance(o, StageChanged) and o.rule_id == "order"]
    assert plain.explanation is None


@pytest.mark.parametrize("value", ["1000", True, None, [1000], {"amount": 1000}, 1e16, 10**400])
def test_a_value_that_is_not_a_usable_number_adds_nothing_and_is_counted(value: Any) -> None:
    state, outputs = drive([VALUE], [_order(value, days(0)), _order(600, days(1))])
    assert _sum_changes(outputs) == []
    kept = state.sums["value"]["lifetime"]
    assert kept.ignored == 1
    assert [e.amount for e in kept.entries] == [600]


def test_a_missing_value_is_counted_as_ignored() -> None:
    state, _ = drive([VALUE], [track("Order Completed", at=T0)])
    assert state.sums["value"]["lifetime"].ignored == 1
    assert state.sums["value"]["lifetime"].entries == []


def test_the_same_message_id_twice_adds_once() -> None:
    first = _order(600, days(0), message_id="m-1")
    state, outputs = drive([VALUE], [first, first, _order(300, days(1))])
    assert _sum_changes(outputs) == []
    assert [e.amount for e in state.sums["value"]["lifetime"].entries] == [600, 300]
    # Even once the dedupe window forgot it, the kept amount remembers its messageId.
    state.seen_message_ids = []
    state, outputs = drive([VALUE], [first], state)
    assert [e.amount for e in state.sums["value"]["lifetime"].entries] == [600, 300]


def test_replaying_the_whole_journey_yields_the_same_outputs_and_state() -> None:
    events = [_order(400, days(0)), _refund(-50, days(1)), _order(700, days(2))]
    state, outputs = drive([VALUE], events)
    again, replayed = drive([VALUE], events, state)
    assert replayed == []
    assert again == state
    assert _sum_changes(outputs)[0].explanation == drive([VALUE], events)[1][-1].explanation


def test_an_all_time_sum_over_a_dotted_path() -> None:
    events = [
        track("Order Completed", properties={"order": {"total": 60}}, at=T0),
        track("Order Completed", properties={"order": {"total": 40}}, at=T0 + days(900)),
    ]
    _, outputs = drive([ALL_TIME], events)
    assert moves(outputs, "forever") == [(None, "lifetime")]
    assert outputs[0].explanation.sum.within_seconds is None  # type: ignore[union-attr]


def test_the_kept_amounts_are_bounded_and_no_amount_is_lost() -> None:
    events = [
        track("Order Completed", properties={"order": {"total": 0.5}}, at=T0 + timedelta(minutes=i))
        for i in range(SUM_ENTRIES + 50)
    ]
    state, outputs = drive([ALL_TIME], events)
    kept = state.sums["forever"]["lifetime"].entries
    assert len(kept) == SUM_ENTRIES
    assert sum(e.amount for e in kept) == 0.5 * (SUM_ENTRIES + 50)
    assert outputs == []  # 75 < 100


def test_amounts_add_up_across_a_merge_and_a_replayed_transfer_adds_nothing() -> None:
    def anonymous(amount: float, at: timedelta) -> Any:
        return _order(amount, at).model_copy(update={"user_id": None, "anonymous_id": "anon-1"})

    source, _ = drive([VALUE], [anonymous(500, days(0)), anonymous("n/a", days(0))])
    target, _ = drive([VALUE], [_order(300, days(1))])

    def merged(into: ContactState, source: ContactState) -> ContactState:
        state, _ = merge(
            into,
            source,
            contact_id="contact-1",
            merged_contact_id="anon-1",
            cause_message_id="m-identify",
            event_time=T0 + days(1),
            funnels=[VALUE],
            processed_at=PROCESSED_AT,
            dedupe_window=200,
        )
        return state

    once = merged(target, source)
    kept = once.sums["value"]["lifetime"]
    assert sorted(e.amount for e in kept.entries) == [300, 500]
    assert kept.ignored == 1
    assert merged(once, source) == once
    # A transfer re-sent with more history adds only the new amount.
    more, _ = drive([VALUE], [anonymous(100, days(1))], source)
    again = merged(once, more).sums["value"]["lifetime"]
    assert sorted(e.amount for e in again.entries) == [100, 300, 500]
    _, outputs = drive([VALUE], [_order(200, days(2))], once)
    assert [c.explanation.sum.total for c in _sum_changes(outputs)] == [1000.0]  # type: ignore[union-attr]


def test_an_edited_funnel_without_the_summed_rule_drops_its_amounts() -> None:
    state, _ = drive([VALUE], [_order(500, days(0))])
    edited = funnel(
        """
name: value
stages: [customer, lifetime]
rules:
  - {id: order, to: customer, match: {event: Order Completed}}
"""
    )
    state, _ = drive([edited], [_order(10, days(1))], state)
    assert state.sums == {}


@pytest.mark.parametrize(
    ("sum_part", "match_part", "message"),
    [
        ("{property: revenue, at_least: ten}", "{}", "rules[0].sum.at_least: "),
        ("{property: revenue, at_least: true}", "{}", "rules[0].sum.at_least: "),
        ("{property: revenue, at_least: .inf}", "{}", "rules[0].sum.at_least: "),
        ("{property: '', at_least: 1}", "{}", "rules[0].sum.property: "),
        ("{property: revenue, at_least: 1, within: 0s}", "{}", "rules[0].sum.within: "),
        ("{property: revenue, at_least: 1, over: 7d}", "{}", "rules[0].sum.over: "),
        (
            "{property: revenue, at_least: 1}",
            "{revenue: abc}",
            "rules[0].match[0].properties.revenue: the rule sums revenue,"
            " but its match requires 'abc'",
        ),
        (
            "{property: revenue, at_least: 1}",
            "{revenue: {in: [1, free]}}",
            "requires 'free', which is not a number",
        ),
        (
            "{property: revenue, at_least: 1}",
            "{revenue: {prefix: EUR}}",
            "rules[0].match[0].properties.revenue: the rule sums revenue, but its match requires",
        ),
    ],
)
def test_a_sum_that_cannot_be_a_number_is_refused_at_load(
    sum_part: str, match_part: str, message: str
) -> None:
    text = f"""
name: bad
stages: [a, b]
rules:
  - id: r
    to: b
    match: {{event: Order Completed, properties: {match_part}}}
    sum: {sum_part}
"""
    with pytest.raises(FunnelDefinitionError) as caught:
        funnel(text, file_name="bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert message in str(caught.value)


def test_a_numeric_constant_in_the_match_is_fine() -> None:
    funnel(
        """
name: fine
stages: [a, b]
rules:
  - {id: r, to: b, match: {event: X, properties: {revenue: {gt: 0}}},
     sum: {property: revenue, at_least: 1}}
  - {id: s, to: b, match: {event: Y, properties: {revenue: 5}},
     sum: {property: revenue, at_least: 1}}
"""
    )


def test_count_and_sum_together_must_both_hold() -> None:
    both = funnel(
        """
name: both
stages: [a, b]
rules:
  - id: r
    to: b
    match: {event: Order Completed}
    count: {at_least: 2, within: 30d}
    sum: {property: revenue, at_least: 100}
"""
    )
    _, outputs = drive([both], [_order(150, days(0))])
    assert outputs == []
    _, outputs = drive([both], [_order(150, days(0)), _order(1, days(1))])
    [change] = outputs
    assert change.explanation is not None
    assert change.explanation.count is not None and change.explanation.count.matches == 2
    assert change.explanation.sum is not None and change.explanation.sum.total == 151
