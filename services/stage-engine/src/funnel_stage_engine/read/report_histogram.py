"""Time to convert from the report's fixed-bucket histograms: pure arithmetic.

The projection keeps, per stage and day, a histogram of the time from first reaching a
stage to first reaching the next: slot 0 holds [0, 1) s, slot k >= 1 holds
[2^((k-1)/4), 2^(k/4)) s, the last slot everything from 2^26 s (about 2.1 years) on; each
slot has a count and the exact sum of its times (microseconds). Histograms of several days
add up slot by slot. A percentile is PostgreSQL's ``percentile_cont`` over the times with
each time replaced by the mean of its slot: exact when the values around the rank are alone
in their slots, and otherwise off by less than one slot's width (under 19%, or under 1 s
for times under a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["BUCKETS", "PER_DOUBLING", "bucket_bounds", "bucket_of", "percentile"]

BUCKETS = 106  # The migration 0007 (``report_bucket``) uses the same slots, 1-based.
PER_DOUBLING = 4


def bucket_of(seconds: float) -> int:
    """The slot (0-based) a time to convert falls in."""
    if seconds < 1:
        return 0
    return min(1 + math.floor(math.log2(seconds) * PER_DOUBLING), BUCKETS - 1)


def bucket_bounds(slot: int) -> tuple[float, float]:
    """The times ``[low, high)`` of a slot, in seconds."""
    if slot == 0:
        return 0.0, 1.0
    high = math.inf if slot == BUCKETS - 1 else 2 ** (slot / PER_DOUBLING)
    return 2 ** ((slot - 1) / PER_DOUBLING), high


def percentile(counts: Sequence[int], sums_us: Sequence[int], fraction: float) -> float | None:
    """``percentile_cont(fraction)`` estimated from one histogram; None when it is empty."""
    total = sum(counts)
    if total <= 0:
        return None
    position = fraction * (total - 1)
    below = math.floor(position)
    low = _value_at(counts, sums_us, below)
    high = _value_at(counts, sums_us, min(below + 1, total - 1))
    return low + (position - below) * (high - low)


def _value_at(counts: Sequence[int], sums_us: Sequence[int], rank: int) -> float:
    seen = 0
    for count, total_us in zip(counts, sums_us, strict=True):
        if count > 0 and rank < seen + count:
            return total_us / count / 1_000_000
        seen += max(count, 0)
    raise ValueError(f"rank {rank} is past the histogram's {seen} values")
