"""The conversion report of one funnel: pure arithmetic over counts the database returns.

Definitions (``docs/read-api.md``, "Read API and funnel pages", repeats them):

- *reached* a stage in [since, until): the contact's first forward move into
  that stage or a later one happened in the range. A forward funnel may skip
  stages; a contact that jumped from visitor to customer has reached lead too.
- *step conversion* from stage s: reached(s + 1) / reached(s); none for the
  last stage, or when nobody reached s.
- *time to convert* from s: first reaching s + 1 minus first reaching s, for
  the contacts counted in reached(s) that went on; median and p90, estimated from
  the aggregates' histogram (``report_histogram.py``: within one slot).
- *in progress* / *stalled*: contacts whose current stage is s now, split by
  whether a stall was recorded during their present stay (not range-bound).
- *blocked*: refused skips (strict funnels) in the range, counted at the stage
  the contact was held in.
- *dropped*: people who stalled in the stage (the stall's deadline in the range)
  and never progressed: their furthest stage is still that stage or an earlier
  one. Each person once per stage, however often they stalled there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "FunnelReport",
    "StageCounts",
    "StageReport",
    "build_report",
    "duration",
    "percent",
]


@dataclass(frozen=True)
class StageCounts:
    """What the database counted for one stage."""

    reached: int = 0
    in_progress: int = 0
    stalled: int = 0
    blocked: int = 0
    dropped: int = 0
    median_s: float | None = None
    p90_s: float | None = None


@dataclass(frozen=True)
class StageReport:
    stage: str
    reached: int
    current: int
    in_progress: int
    stalled: int
    blocked: int
    conversion_to_next: float | None
    median_s_to_next: float | None
    p90_s_to_next: float | None
    share_of_first: float | None = field(default=None)
    dropped: int = 0


@dataclass(frozen=True)
class FunnelReport:
    funnel: str
    stages: list[StageReport]


def build_report(
    funnel: str, stages: Sequence[str], counts: Mapping[str, StageCounts]
) -> FunnelReport:
    """Per-stage figures in funnel order; stages nobody reached get zeros."""
    rows = [counts.get(stage, StageCounts()) for stage in stages]
    first = rows[0].reached if rows else 0
    reports = []
    for index, (stage, row) in enumerate(zip(stages, rows, strict=True)):
        following = rows[index + 1] if index + 1 < len(rows) else None
        rate = None
        if following is not None and row.reached:
            rate = following.reached / row.reached
        last = following is None
        reports.append(
            StageReport(
                stage=stage,
                reached=row.reached,
                current=row.in_progress + row.stalled,
                in_progress=row.in_progress,
                stalled=row.stalled,
                blocked=row.blocked,
                conversion_to_next=rate,
                median_s_to_next=None if last else row.median_s,
                p90_s_to_next=None if last else row.p90_s,
                share_of_first=row.reached / first if first else None,
                dropped=row.dropped,
            )
        )
    return FunnelReport(funnel=funnel, stages=reports)


def percent(rate: float | None) -> str:
    """``0.3333`` as ``33%``; no rate as an en dash."""
    return "\u2013" if rate is None else f"{round(rate * 100)}%"


def duration(seconds: float | None) -> str:
    """A time to convert, short: 45 s, 12 min, 5.5 h, 3 d; none as an en dash."""
    if seconds is None:
        return "\u2013"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{seconds:.0f} s"
