"""Prometheus metrics, on a registry of the app's own (several apps can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from funnel_notifier.domain.followups import Change

__all__ = ["NotifierMetrics"]


class NotifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.followups = Counter(
            "funnel_notifier_followups",
            "Follow-up state changes made by this process, by status.",
            ["status"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "funnel_notifier_attempts",
            "Delivery attempts by channel and result (succeeded, failed).",
            ["channel", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "funnel_notifier_delivery_latency_seconds",
            "From a follow-up's due time to its successful delivery.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "funnel_notifier_queue_depth",
            "Follow-ups due now and not yet taken by a dispatcher.",
            registry=self.registry,
        )
        self.ignored = Counter(
            "funnel_notifier_ignored_records",
            "Records on the stage-changed topic no rule type acts on, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "funnel_notifier_rejected_records",
            "Records of the stage-changed topic dead-lettered to the rejected topic, by why"
            " (invalid, due_time_out_of_range, database_refused).",
            ["why"],
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "funnel_notifier_commit_failures",
            "Offset commits that failed after their records were stored (a rebalance);"
            " the records are re-read, harmlessly.",
            registry=self.registry,
        )
        for why in ("invalid", "due_time_out_of_range", "database_refused"):
            self.rejected.labels(why)
        for change in Change:
            self.followups.labels(change)
