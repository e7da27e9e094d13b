"""The one result type every benchmark returns, and what the report is made of."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Measurement", "Status", "ratio", "target_met"]

Status = Literal["ok", "skipped", "failed"]


def ratio(figure: float | None, baseline: float | None) -> float | None:
    if figure is None or not baseline:
        return None
    return figure / baseline


# ">= 0.7" is a ratio target; ">= 500 deliveries/s" and "<= 150 ms" have a unit and
# apply to the figure itself.
_TARGET = re.compile(r"^(>=|<=)\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(\S.*)?$")


def target_met(target: str | None, figure: float | None, ratio_: float | None) -> bool | None:
    """Whether the figure (or, for a unitless target, the ratio) meets the target.

    None when there is no target, nothing to compare, or the target cannot be read.
    """
    match = _TARGET.match(target.strip()) if target else None
    if match is None:
        return None
    op, number, unit = match.groups()
    value = ratio_ if unit is None else figure
    if value is None:
        return None
    bound = float(number.replace(",", ""))
    return value >= bound if op == ">=" else value <= bound


@dataclass
class Measurement:
    """One figure, divided by the baseline measured in the same run where there is one.

    ``cpu_seconds`` and ``baseline_cpu_seconds`` are the CPU (user + system) each
    process used while it was measured, by process name.
    """

    name: str
    title: str
    unit: str
    figure: float | None = None
    baseline: str | None = None
    baseline_figure: float | None = None
    target: str | None = None
    status: Status = "ok"
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    baseline_cpu_seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return ratio(self.figure, self.baseline_figure)

    @property
    def target_met(self) -> bool | None:
        return target_met(self.target, self.figure, self.ratio)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "target_met": self.target_met}

    @classmethod
    def skipped(cls, name: str, title: str, unit: str, reason: str) -> Measurement:
        return cls(name=name, title=title, unit=unit, status="skipped", notes=[reason])

    @classmethod
    def failed(cls, name: str, title: str, unit: str, error: str) -> Measurement:
        return cls(name=name, title=title, unit=unit, status="failed", notes=[error])
