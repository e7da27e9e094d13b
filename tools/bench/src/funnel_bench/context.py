"""What every benchmark gets: the broker, its time budget, sizes and where to write logs."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnel_bench.stack import Stack

__all__ = ["WRITE_KEY", "BenchContext", "basic_auth"]

WRITE_KEY = "wk-bench"


def basic_auth(write_key: str = WRITE_KEY) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@dataclass(frozen=True)
class BenchContext:
    stack: Stack
    duration_s: float  # Each timed phase: a figure and its baseline get this much each.
    load_tool: str  # "wrk" or "python"
    profile: bool  # py-spy on the stage engine during its benchmark
    stage_events: int  # Contact events preloaded for the stage-engine benchmark
    e2e_rate: int  # events/s sent in the end-to-end benchmark
    e2e_seconds: float
    memory_contacts: int
    database_url: str  # The stage engine's projection database, migrated.
    # The report benchmark: projection sizes, requests per figure, stage changes per round.
    report_contacts: tuple[int, ...] = (100_000, 1_000_000)
    report_requests: int = 200
    report_writes: int = 6_000
    # py-spy summaries by what was profiled, filled in by the benchmarks.
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.stack.workdir
