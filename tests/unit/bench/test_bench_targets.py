"""The benchmark report says whether each target is met: unitless targets are ratios."""

from __future__ import annotations

import pytest
from funnel_bench.result import Measurement, target_met


@pytest.mark.parametrize(
    ("target", "figure", "ratio", "met"),
    [
        (">= 0.7", 12_000.0, 0.18, False),
        (">= 0.25", 1_664.0, 0.355, True),
        (">= 0.25", 1_000.0, 0.25, True),
        ("<= 150 ms", 265.3, None, False),
        ("<= 150 ms", 149.9, None, True),
        (">= 500 deliveries/s", 1_147.9, 0.139, True),
        (">= 1,000 events/s", 999.0, None, False),
    ],
)
def test_a_target_is_met_by_the_ratio_or_by_a_figure_with_its_unit(
    target: str, figure: float, ratio: float | None, met: bool
) -> None:
    assert target_met(target, figure, ratio) is met


@pytest.mark.parametrize(
    ("target", "figure", "ratio"),
    [(None, 1.0, 1.0), ("", 1.0, 1.0), ("fast", 1.0, 1.0), (">= 0.7", 1.0, None)],
)
def test_no_verdict_without_a_readable_target_or_a_value_to_compare(
    target: str | None, figure: float, ratio: float | None
) -> None:
    assert target_met(target, figure, ratio) is None


def test_the_json_report_carries_the_verdict() -> None:
    measured = Measurement(
        name="x", title="X", unit="events/s", figure=30.0, baseline_figure=100.0, target=">= 0.25"
    )
    assert measured.to_json()["target_met"] is True
