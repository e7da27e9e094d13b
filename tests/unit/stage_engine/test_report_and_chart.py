"""The report's arithmetic and the funnel chart's geometry: pure, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from funnel_stage_engine.read.chart import MIN_BAR, funnel_chart
from funnel_stage_engine.read.pages import day_range
from funnel_stage_engine.read.report import StageCounts, build_report, duration, percent

STAGES = ["visitor", "lead", "prospect", "customer"]


def _reached(*counts: int) -> dict[str, StageCounts]:
    return {stage: StageCounts(reached=n) for stage, n in zip(STAGES, counts, strict=True)}


def test_step_conversion_is_reached_next_over_reached_this() -> None:
    report = build_report("journey", STAGES, _reached(10, 6, 3, 1))
    rates = [stage.conversion_to_next for stage in report.stages]
    assert rates == [pytest.approx(0.6), pytest.approx(0.5), pytest.approx(1 / 3), None]
    assert [percent(rate) for rate in rates] == ["60%", "50%", "33%", "\u2013"]
    assert [stage.share_of_first for stage in report.stages] == [1.0, 0.6, 0.3, 0.1]


def test_a_stage_nobody_reached_has_no_rate_rather_than_a_division_by_zero() -> None:
    report = build_report("journey", STAGES, {"visitor": StageCounts(reached=4)})
    assert [stage.reached for stage in report.stages] == [4, 0, 0, 0]
    assert [stage.conversion_to_next for stage in report.stages] == [0.0, None, None, None]


def test_current_is_in_progress_plus_stalled_and_the_last_stage_has_no_time_to_next() -> None:
    counts = {
        "lead": StageCounts(reached=5, in_progress=2, stalled=1, median_s=60.0, p90_s=90.0),
        "customer": StageCounts(reached=1, median_s=5.0, p90_s=5.0),
    }
    report = build_report("journey", STAGES, counts)
    lead, customer = report.stages[1], report.stages[3]
    assert (lead.current, lead.median_s_to_next, lead.p90_s_to_next) == (3, 60.0, 90.0)
    assert (customer.median_s_to_next, customer.p90_s_to_next) == (None, None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "\u2013"),
        (0, "0 s"),
        (45, "45 s"),
        (720, "12 min"),
        (19800, "5.5 h"),
        (259200, "3 d"),
    ],
)
def test_durations_read_in_the_largest_unit(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_the_chart_has_one_bar_per_stage_with_widths_proportional_to_reached() -> None:
    report = build_report("journey", STAGES, _reached(10, 5, 0, 0))
    chart = funnel_chart(report)
    assert [bar.stage for bar in chart.bars] == STAGES
    widths = [bar.width for bar in chart.bars]
    assert widths[1] == pytest.approx(widths[0] / 2)
    # Nobody reached: still a sliver, so the stage stays visible.
    assert widths[2:] == [MIN_BAR, MIN_BAR]
    centres = {round(bar.x + bar.width / 2, 1) for bar in chart.bars}
    assert len(centres) == 1  # Centred: a funnel, not a bar chart.
    assert [neck.label for neck in chart.necks] == ["50% convert", "0% convert", "\u2013 convert"]
    ys = [bar.y for bar in chart.bars]
    assert ys == sorted(ys) and chart.height >= ys[-1] + chart.bars[-1].height


def test_an_empty_funnel_still_draws_its_stages() -> None:
    chart = funnel_chart(build_report("journey", STAGES, {}))
    assert [bar.width for bar in chart.bars] == [MIN_BAR] * 4


def test_the_page_range_runs_from_the_start_of_since_to_the_end_of_until() -> None:
    start, end = day_range(date(2026, 11, 1), date(2026, 11, 23))
    assert start == datetime(2026, 11, 1, tzinfo=UTC)
    assert end == datetime(2026, 11, 24, tzinfo=UTC)
    assert day_range(None, None) == (None, None)
