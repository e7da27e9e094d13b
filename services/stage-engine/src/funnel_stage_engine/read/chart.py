"""Geometry of the SVG funnel chart: centred bars, widths proportional to "reached".

Between two bars a trapezoid joins them (the funnel's neck) and carries the
step conversion. Pure: the template only draws what this computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from funnel_stage_engine.read.report import FunnelReport, percent

__all__ = ["Bar", "Chart", "Neck", "funnel_chart"]

WIDTH = 760
BAR_HEIGHT = 44
GAP = 30
LABEL_WIDTH = 170  # Left column for stage names.
MIN_BAR = 6  # A stage nobody reached still shows a sliver, so no stage vanishes.
PALETTE = ["#2563eb", "#0891b2", "#059669", "#65a30d", "#d97706", "#dc2626", "#9333ea", "#db2777"]


@dataclass(frozen=True)
class Bar:
    stage: str
    x: float
    y: float
    width: float
    height: float
    colour: str
    count: int
    label: str  # "6 reached · 2 here"


@dataclass(frozen=True)
class Neck:
    """The joint between bar i and bar i + 1, labelled with the step conversion."""

    points: str  # SVG polygon points
    label: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    necks: list[Neck]


def funnel_chart(report: FunnelReport) -> Chart:
    stages = report.stages
    most = max((stage.reached for stage in stages), default=0)
    span = WIDTH - LABEL_WIDTH - 20
    centre = LABEL_WIDTH + span / 2
    bars: list[Bar] = []
    for index, stage in enumerate(stages):
        width = max(MIN_BAR, span * stage.reached / most) if most else MIN_BAR
        bars.append(
            Bar(
                stage=stage.stage,
                x=round(centre - width / 2, 2),
                y=index * (BAR_HEIGHT + GAP) + 10,
                width=round(width, 2),
                height=BAR_HEIGHT,
                colour=PALETTE[index % len(PALETTE)],
                count=stage.reached,
                label=f"{stage.reached} reached · {stage.current} here",
            )
        )
    necks = [
        _neck(upper, lower, percent(stage.conversion_to_next))
        for upper, lower, stage in zip(bars, bars[1:], stages, strict=False)
    ]
    height = len(stages) * (BAR_HEIGHT + GAP) - GAP + 20 if stages else 40
    return Chart(width=WIDTH, height=height, bars=bars, necks=necks)


def _neck(upper: Bar, lower: Bar, label: str) -> Neck:
    top = upper.y + upper.height
    bottom = lower.y
    points = " ".join(
        f"{x:g},{y:g}"
        for x, y in (
            (upper.x, top),
            (upper.x + upper.width, top),
            (lower.x + lower.width, bottom),
            (lower.x, bottom),
        )
    )
    return Neck(
        points=points,
        label=f"{label} convert",
        label_x=LABEL_WIDTH + (WIDTH - LABEL_WIDTH - 20) / 2,
        label_y=(top + bottom) / 2 + 4,
    )
