"""Counted and summed rules: "at least N matching events" or "a total of at least X", on event time.

Counts: the state keeps, per (funnel, rule), only the ``at_least`` most recent
event times (by event time, not arrival order). That bounds memory per contact,
and makes out-of-order events count where their time puts them: a late event
counts if it is among the ``at_least`` most recent, and is forgotten otherwise.

Sums (``sum: {property: revenue, at_least: 1000, within: 365d}``): the state
keeps, per (funnel, rule), the matching events' amounts with their event times
and messageIds, at most ``SUM_ENTRIES`` of them. The window ends at the newest
kept event time and reaches back ``within`` (inclusive, like counts); amounts
older than that can never count again and are dropped. Without ``within`` the
total is over all time. Past ``SUM_ENTRIES``, the two oldest entries are combined
into one at the later of their times (so an old amount may stay in a window
until the amount it was combined with leaves it: a bounded overstatement, never
a lost amount). Refunds are negative amounts. A value that is missing, not a
number (text, a boolean, null) or not finite adds nothing and is counted in the
rule's ``ignored``. The same messageId is never added twice.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from funnel_shared.conditions import MISSING, lookup
from funnel_shared.durations import PositiveDuration
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_AMOUNT",
    "SUM_ENTRIES",
    "CountWindow",
    "SumEntry",
    "SumState",
    "SumWindow",
    "amount_of",
    "record_amount",
    "record_time",
]

# At most this many amounts are kept per summed rule and contact (about 60 bytes each).
SUM_ENTRIES = 100
# Amounts beyond this magnitude are ignored: no real order is worth 10^15 of anything,
# and a client must not be able to push a total to infinity.
MAX_AMOUNT = 1e15


class CountWindow(BaseModel):
    """``count: {at_least: 3, within: 7d}``: the rule fires on the Nth match within the window."""

    model_config = ConfigDict(extra="forbid")

    at_least: int = Field(ge=1, le=1000)
    within: PositiveDuration = Field(description="A duration such as 30m, 1.5h, 7d or 2w.")

    def satisfied(self, times: Sequence[datetime]) -> bool:
        """Whether the kept times (from ``record_time``) hold ``at_least`` within the window."""
        return len(times) >= self.at_least and times[-1] - times[0] <= self.within


def record_time(window: CountWindow, times: Sequence[datetime], at: datetime) -> list[datetime]:
    """The kept times after one more match at ``at``: sorted, at most ``at_least`` of them.

    Times further than the window before the newest can never count again, so
    they are dropped too.
    """
    kept = sorted([*times, at])[-window.at_least :]
    newest = kept[-1]
    return [time for time in kept if newest - time <= window.within]


class SumWindow(BaseModel):
    """``sum: {property: revenue, at_least: 1000, within: 365d}``: a total over matching events."""

    model_config = ConfigDict(extra="forbid")

    property: str = Field(
        min_length=1,
        max_length=200,
        description="Dotted path of the amount in the event's properties, e.g. revenue.",
    )
    at_least: float = Field(description="The total at or above which the rule fires.")
    within: PositiveDuration | None = Field(
        default=None, description="A duration such as 30d or 52w; leave out for all time."
    )

    @field_validator("at_least", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"at_least must be a number (e.g. 1000); got {value!r}")
        if not math.isfinite(value) or abs(value) > MAX_AMOUNT:
            raise ValueError(f"at_least must be a finite number of at most {MAX_AMOUNT:g}")
        return value

    def total(self, entries: Sequence[SumEntry]) -> float:
        """The total of the kept entries within the window (they are pruned to it already)."""
        return math.fsum(entry.amount for entry in entries)

    def satisfied(self, entries: Sequence[SumEntry]) -> bool:
        return bool(entries) and self.total(entries) >= self.at_least


class SumEntry(BaseModel):
    """One matching event's amount, at its event time (``id``: its messageId)."""

    at: AwareDatetime
    amount: float
    id: str


class SumState(BaseModel):
    """What a contact keeps for one summed rule: recent amounts, and how many were ignored."""

    entries: list[SumEntry] = Field(default_factory=list, description="Oldest first, bounded.")
    ignored: int = Field(default=0, description="Matching events whose value was not a number.")
    changes: int = Field(
        default=0,
        description="How often the total or ignored changed: orders the rule's TotalChanged.",
    )


def amount_of(window: SumWindow, properties: Mapping[str, Any]) -> float | None:
    """The event's amount for ``window``, or None when it is missing or not a usable number."""
    value = lookup(properties, window.property)
    if value is MISSING or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > MAX_AMOUNT:
        return None  # Before float(): a huge int would overflow.
    amount = float(value)
    if not math.isfinite(amount) or abs(amount) > MAX_AMOUNT:
        return None
    return amount


def record_amount(window: SumWindow, state: SumState, entry: SumEntry) -> SumState:
    """The rule's state after one more amount; an id already kept adds nothing.

    Entries stay sorted by event time; those that left the window behind the
    newest are dropped, and past ``SUM_ENTRIES`` the two oldest are combined.
    """
    if any(kept.id == entry.id for kept in state.entries):
        return state.model_copy(deep=True)
    entries = sorted([*state.entries, entry], key=lambda kept: kept.at)
    entries = _in_window(entries, window.within)
    while len(entries) > SUM_ENTRIES:
        first, second = entries[0], entries[1]
        combined = SumEntry(at=second.at, amount=first.amount + second.amount, id=second.id)
        entries = [combined, *entries[2:]]
    return SumState(entries=entries, ignored=state.ignored)


def _in_window(entries: list[SumEntry], within: timedelta | None) -> list[SumEntry]:
    if within is None or not entries:
        return entries
    newest = entries[-1].at
    return [entry for entry in entries if newest - entry.at <= within]
