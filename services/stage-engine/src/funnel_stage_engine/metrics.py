"""Prometheus metrics of one stage-engine app.

Each app gets its own ``CollectorRegistry`` rather than the process-global
one, so that tests (and anything else) can build several apps in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LagReader", "StageEngineMetrics", "StallReader"]


# Consumer lag per source partition, read when Prometheus scrapes.
LagReader = Callable[[], Mapping[int, int]]


class _LagCollector(Collector):
    def __init__(self, read: LagReader) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "funnel_stage_engine_consumer_lag",
            "Records in the contact-events partition not yet committed by this worker.",
            labels=["partition"],
        )
        for partition, lag in sorted(self._read().items()):
            gauge.add_metric([str(partition)], lag)
        yield gauge


# Seconds the agent has made no progress while records wait (0: none wait), and the
# threshold beyond which it counts as stalled; read when Prometheus scrapes.
StallReader = Callable[[], tuple[float, float]]


class _StallCollector(Collector):
    def __init__(self, read: StallReader) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        waiting, after = self._read()
        yield GaugeMetricFamily(
            "funnel_stage_engine_agent_waiting_seconds",
            "Seconds the agent has finished no batch while records wait for it (0: none wait).",
            value=waiting,
        )
        yield GaugeMetricFamily(
            "funnel_stage_engine_agent_stalled",
            "1 while records have waited longer than STAGE_ENGINE_AGENT_STALL_AFTER_S with no"
            " batch finished (/healthz then answers 503), else 0.",
            value=1.0 if waiting > after else 0.0,
        )


class StageEngineMetrics:
    def __init__(self, *, lag: LagReader | None = None, stall: StallReader | None = None) -> None:
        self.registry = CollectorRegistry()
        self.events_processed = Counter(
            "funnel_stage_engine_events_processed",
            "Records handled: changed (a stage moved), unchanged (also duplicates, refused"
            " skips, links, stalls without a move), rejected (dead-lettered), forwarded (an"
            " anonymous event sent on to the contact it was merged into).",
            ["outcome"],
            registry=self.registry,
        )
        self.stage_changes = Counter(
            "funnel_stage_engine_stage_changes",
            "Stage changes published, by funnel and target stage.",
            ["funnel", "to_stage"],
            registry=self.registry,
        )
        self.stage_blocked = Counter(
            "funnel_stage_engine_stage_blocked",
            "Refused skips in strict funnels, by funnel and attempted stage.",
            ["funnel", "attempted_stage"],
            registry=self.registry,
        )
        self.stalls = Counter(
            "funnel_stage_engine_stalls",
            "Stalls published, by funnel and stage.",
            ["funnel", "stage"],
            registry=self.registry,
        )
        self.merges = Counter(
            "funnel_stage_engine_merges",
            "Contact-merged records published (one per funnel of a merge), by funnel.",
            ["funnel"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "funnel_stage_engine_rejected",
            "Events dead-lettered to the rejected topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        if lag is not None:
            self.registry.register(_LagCollector(lag))
        if stall is not None:
            self.registry.register(_StallCollector(stall))
