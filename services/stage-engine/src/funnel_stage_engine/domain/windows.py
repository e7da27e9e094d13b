"""Counted rules: "at least N matching events within a duration", on event time.

The state keeps, per (funnel, rule), only the ``at_least`` most recent event
times (by event time, not arrival order). That bounds memory per contact, and
makes out-of-order events count where their time puts them: a late event
counts if it is among the ``at_least`` most recent, and is forgotten otherwise.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from funnel_shared.durations import PositiveDuration
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CountWindow", "record_time"]


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
