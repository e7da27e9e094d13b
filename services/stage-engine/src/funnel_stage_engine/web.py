"""HTTP pages on faust's web server: ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

import faust

from funnel_stage_engine.metrics import CONTENT_TYPE, StageEngineMetrics

__all__ = ["add_pages"]


def add_pages(app: faust.App, metrics: StageEngineMetrics) -> None:
    ready = {"assigned": False}

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        if ready["assigned"] and not app.rebalancing:
            return web.json({"status": "ready"})
        return web.json({"status": "joining consumer group"}, status=503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types want the signal arg
    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        ready["assigned"] = True
