"""Counted rules: N matching events within a window of event time, with bounded state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from funnel_shared.durations import parse_duration

from tests.support.journeys import T0, days, drive, funnel, moves, page, track

PRICING = funnel(
    """
name: interest
stages: [curious, keen]
rules:
  - id: pricing-views
    to: keen
    match: {type: page, name: Pricing}
    count: {at_least: 3, within: 7d}
"""
)


def _views(*offsets: timedelta) -> list:
    return [page("Pricing", at=T0 + offset) for offset in offsets]


def test_three_pricing_views_within_seven_days_count() -> None:
    _, outputs = drive([PRICING], _views(days(0), days(3), days(7)))
    assert moves(outputs, "interest") == [(None, "keen")]


def test_three_pricing_views_spread_over_eight_days_do_not_count() -> None:
    state, outputs = drive([PRICING], _views(days(0), days(4), days(8)))
    assert outputs == []
    assert "interest" not in state.funnels


def test_the_rule_fires_on_the_view_that_completes_the_count() -> None:
    _, outputs = drive([PRICING], _views(days(0), days(8), days(9), days(10)))
    assert len(outputs) == 1
    assert outputs[0].event_time == T0 + days(10)


def test_events_that_do_not_match_are_not_counted() -> None:
    events = [*_views(days(0), days(1)), page("Home", at=T0 + days(2)), track("Pricing")]
    _, outputs = drive([PRICING], events)
    assert outputs == []


def test_a_late_event_counts_where_its_event_time_puts_it() -> None:
    # Arrives last but happened between the other two: all three fit in 7 days.
    _, outputs = drive([PRICING], _views(days(10), days(16), days(12)))
    assert moves(outputs, "interest") == [(None, "keen")]


def test_a_late_event_outside_the_window_does_not_count() -> None:
    _, outputs = drive([PRICING], _views(days(10), days(16), days(1)))
    assert outputs == []


def test_counter_state_stays_bounded_by_at_least() -> None:
    state, _ = drive([PRICING], _views(*(days(i * 0.5) for i in range(50))))
    assert len(state.counters["interest"]["pricing-views"]) == 3


def test_counter_state_drops_times_outside_the_window() -> None:
    state, _ = drive([PRICING], _views(days(0), days(1), days(30)))
    assert state.counters["interest"]["pricing-views"] == [T0 + days(30)]


def test_counters_of_rules_no_longer_defined_are_dropped() -> None:
    state, _ = drive([PRICING], _views(days(0)))
    assert state.counters == {"interest": {"pricing-views": [T0]}}
    edited = funnel(
        """
name: interest
stages: [curious, keen]
rules:
  - {id: other, to: keen, match: {event: Keen}}
"""
    )
    state, _ = drive([edited], _views(days(1)), state=state)
    assert state.counters == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
    ],
)
def test_durations_are_written_with_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text, positive=True) == expected


@pytest.mark.parametrize("text", ["7", "7 days", "0d", "-1d", "d"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text, positive=True)


def test_a_count_window_may_be_a_decimal_duration() -> None:
    counted = funnel(
        """
name: interest
stages: [curious, keen]
rules:
  - id: pricing-views
    to: keen
    match: {type: page, name: Pricing}
    count: {at_least: 2, within: 1.5h}
"""
    )
    assert counted.definition.rules[0].count is not None
    assert counted.definition.rules[0].count.within == timedelta(minutes=90)
