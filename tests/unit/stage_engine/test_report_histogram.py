"""The time-to-convert percentiles estimated from the report's histogram slots."""

from __future__ import annotations

import math

import pytest
from funnel_stage_engine.read.report_histogram import (
    BUCKETS,
    bucket_bounds,
    bucket_of,
    percentile,
)
from hypothesis import given
from hypothesis import strategies as st

WIDTH = 2**0.25


def _histogram(values: list[float]) -> tuple[list[int], list[int]]:
    counts, sums = [0] * BUCKETS, [0] * BUCKETS
    for value in values:
        slot = bucket_of(value)
        counts[slot] += 1
        sums[slot] += round(value * 1_000_000)
    return counts, sums


def _percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def test_slots_cover_every_time_in_order() -> None:
    assert bucket_of(0) == 0 and bucket_of(0.999) == 0
    assert bucket_of(1) == 1
    assert bucket_bounds(0) == (0.0, 1.0)
    for slot in range(1, BUCKETS - 1):
        low, high = bucket_bounds(slot)
        assert bucket_bounds(slot + 1)[0] == high
        assert high / low == pytest.approx(WIDTH)
        assert bucket_of(low * 1.0001) == slot
    assert bucket_bounds(BUCKETS - 1)[1] == math.inf
    assert bucket_of(10**12) == BUCKETS - 1


def test_values_alone_in_their_slots_give_the_exact_percentile() -> None:
    # The hand-computed journey set: 2.5 h, 3.5 h, 5.5 h (one each in distinct slots).
    values = [9000.0, 12600.0, 19800.0]
    counts, sums = _histogram(values)
    assert percentile(counts, sums, 0.5) == 12600.0
    assert percentile(counts, sums, 0.9) == _percentile_cont(values, 0.9)


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile([0] * BUCKETS, [0] * BUCKETS, 0.5) is None


@given(
    values=st.lists(
        # Under 2^26 s (about 2.1 years): the last slot, from there on, has no upper bound.
        st.floats(min_value=0, max_value=2**26 - 1, allow_nan=False),
        min_size=1,
        max_size=200,
    ),
    fraction=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
)
def test_any_estimate_is_within_one_slot_of_percentile_cont(
    values: list[float], fraction: float
) -> None:
    counts, sums = _histogram(values)
    estimate = percentile(counts, sums, fraction)
    exact = _percentile_cont(values, fraction)
    assert estimate is not None
    assert exact / WIDTH - 1.0 - 1e-6 <= estimate <= exact * WIDTH + 1.0 + 1e-6
