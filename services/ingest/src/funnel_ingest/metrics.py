"""Prometheus metrics: requests by route and status, messages accepted and rejected,
produce latency. Each app gets its own registry, so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KNOWN_METHODS", "OTHER", "IngestMetrics", "RequestMetricsMiddleware"]

# Label values come only from these sets, never from the request: a client sending made-up
# methods or paths must not create new time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "ingest_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "ingest_messages_accepted",
            "Messages acknowledged by the broker, by message type.",
            ["type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "ingest_messages_rejected",
            "Messages refused, by reason (batch items go to the rejected topic).",
            ["reason"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "ingest_produce_latency_seconds",
            "Time from producing a request's records to the broker's last ack.",
            ["outcome"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def labelled(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: ``labels()`` takes a lock and checks the
        values on every call, a few microseconds per request on the hot path."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


class RequestMetricsMiddleware:
    """Counts every answer, labelled by the route template so ids do not explode the labels."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # What the client sees if the app dies before answering.

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER
            self.metrics.labelled(self.metrics.requests, route, method, str(status)).inc()


def _route_template(scope: Scope) -> str:
    # FastAPI leaves the route it dispatched to in the scope: no second pass over the
    # routes' patterns on the hot path. A route whose path matched but not its method
    # (405) is not a match, as below.
    route = scope.get("route")
    methods = getattr(route, "methods", None)
    if route is not None and methods is not None:
        return str(route.path) if scope["method"] in methods else OTHER
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path)
    return OTHER
