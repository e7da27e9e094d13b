"""The e2e probe's latency per third of the run (it shows a drift over time)."""

from __future__ import annotations

from funnel_bench.e2e_probe import _by_third


def test_latency_per_third_counts_each_event_in_the_third_it_was_sent() -> None:
    # Sent at 0-9 s of a 9 s run; seen 10 ms, 20 ms, 40 ms later by third.
    acked = {f"m{i}": float(i) for i in range(9)}
    seen = {f"m{i}": i + (0.01, 0.02, 0.04)[i // 3] for i in range(9)}
    thirds = _by_third(acked, seen, started=0.0, seconds=9.0)
    assert [t["p50_ms"] for t in thirds] == [10.0, 20.0, 40.0]
    assert [t["p99_ms"] for t in thirds] == [10.0, 20.0, 40.0]


def test_latency_per_third_leaves_out_events_never_seen_and_empty_thirds() -> None:
    acked = {"early": 0.0, "lost": 1.0}
    seen = {"early": 0.05}
    thirds = _by_third(acked, seen, started=0.0, seconds=9.0)
    assert thirds[0] == {"p50_ms": 50.0, "p99_ms": 50.0}
    assert thirds[1] == thirds[2] == {"p50_ms": None, "p99_ms": None}
